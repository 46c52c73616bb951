//! The application service: each public method is one API operation, written against the
//! ports only. Rules come from `domain`; this layer orders the I/O around them.

use std::sync::Arc;

use serde_json::Value;

use crate::domain::api_key::{bearer_token, parse_key, AuthError, Principal};
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::{Connector, Mode};
use crate::domain::credentials::{self, SecretPayload};
use crate::domain::edits::Edits;
use crate::domain::error::ApiError;
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{ConnectorId, EntityId};
use crate::domain::lifecycle::{self, LifecycleError, RECOVERY_WINDOW_DAYS};
use crate::domain::time::Timestamp;
use crate::ports::{
    Clock, ConnectorStore, EventBus, IdempotencyStore, KeyStore, OutboxRecord, SecretAction, StoreError, Vault,
};

/// Outbox records younger than this are left to the handler that wrote them.
pub const OUTBOX_GRACE_SECONDS: i64 = 60;

/// How many due items one sweep handles of each kind; the rest wait for the next run.
pub const SWEEP_BATCH: usize = 500;

/// How often a write that lost a race on `version` is re-read and retried before the
/// caller gets a 409.
const WRITE_ATTEMPTS: usize = 3;

/// How often a secret is re-aligned with a row that keeps moving before giving up (the
/// outbox record then keeps the duty for the sweeper).
const RECONCILE_ROUNDS: usize = 5;

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

/// What a write operation did, so the HTTP layer can pick 200 or 201.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Created,
    Changed,
    Unchanged,
}

/// What one sweep did (logged as one summary line per run).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Expired disconnects finalised: `integration.expired`, row deleted, secret gone.
    pub expired: usize,
    /// Index entries that were no longer due when re-read (restored, or raced).
    pub skipped: usize,
    /// Left-behind outbox records delivered.
    pub republished: usize,
    /// Deliveries that failed again and wait for the next run.
    pub failed: usize,
    /// Items the index queries read: proportional to what was due, not to the table.
    pub index_items_read: usize,
}

pub struct Service {
    pub store: Arc<dyn ConnectorStore>,
    pub keys: Arc<dyn KeyStore>,
    pub vault: Arc<dyn Vault>,
    pub bus: Arc<dyn EventBus>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub clock: Arc<dyn Clock>,
}

/// A lost race (the row's `version` moved): re-read and try again.
macro_rules! retry_on_conflict {
    ($body:block) => {{
        let mut attempts = 0;
        loop {
            attempts += 1;
            match $body {
                Err(ApiError::Conflict { code: "conflict", .. }) if attempts < WRITE_ATTEMPTS => continue,
                other => break other,
            }
        }
    }};
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
        retry_on_conflict!({
            let now = self.clock.now();
            match self.store.get(principal.entity_id, connector_type).await? {
                Some(row) if row.is_active => Err(ApiError::Conflict {
                    code: "already_connected",
                    hint: format!(
                        "This entity already has a {connector_type} connector; edit it with PATCH or disconnect it first."
                    ),
                }),
                Some(row) if !row.is_expired(now) && row.is_visible_to(principal) => {
                    let edited = lifecycle::apply_fields(row.clone(), edits);
                    self.restore_row(principal, &row, edited, now).await.map(|next| (next, Outcome::Changed))
                }
                Some(row) if !row.is_expired(now) => Err(ApiError::Conflict {
                    code: "already_connected",
                    hint: format!("This entity already has a {connector_type} connector."),
                }),
                existing => {
                    // Past its window: finish its expiry (as the sweeper would) first.
                    if let Some(expired) = existing {
                        self.finalize_expiry(&expired, now).await?;
                    }
                    let row = lifecycle::connect(principal, connector_type, edits, now).map_err(lifecycle_error)?;
                    self.commit(&row, None, &[EventType::Connected], principal, None, now).await?;
                    Ok((row, Outcome::Created))
                }
            }
        })
    }

    /// Restores `row` (its secret first, so no active row ever has a secret scheduled for
    /// deletion), writing `edited` (row plus any field edits) as the active row.
    async fn restore_row(
        &self,
        principal: &Principal,
        row: &Connector,
        edited: Connector,
        now: Timestamp,
    ) -> Result<Connector, ApiError> {
        let next = lifecycle::restore(&edited, now)
            .map_err(lifecycle_error)?
            .unwrap_or(edited);
        // The secret first, so the row is never active behind a scheduled secret; and again
        // after the commit (`FollowRow`): a disconnect that committed before ours may
        // delete it between our restore and our commit, and only an act after our commit,
        // checked against the row, is sure to come last.
        if row.has_secret() {
            self.vault.restore(row.entity_id, row.connector_type).await?;
        }
        let action = row.has_secret().then_some(SecretAction::FollowRow);
        let committed = self
            .commit(&next, Some(row.version), &[EventType::Restored], principal, action, now)
            .await;
        if committed.is_err() && row.has_secret() {
            self.settle_secret(row).await;
        }
        committed.map(|_| next)
    }

    /// Makes the secret follow the row — live while the row is active, scheduled for
    /// deletion while it is disconnected — starting from `known` (the row as just read) or
    /// a fresh read, and re-reads the row after acting, acting again if it moved meanwhile.
    /// Concurrent requests may each act on what they read; the last to act has read the
    /// last state, so the secret ends up matching the row.
    async fn reconcile_secret(
        &self,
        entity: EntityId,
        connector_type: ConnectorType,
        known: Option<Connector>,
    ) -> Result<(), ApiError> {
        let mut row = match known {
            Some(row) => Some(row),
            None => self.store.get(entity, connector_type).await?,
        };
        for _ in 0..RECONCILE_ROUNDS {
            if !self.follow_row(row.as_ref()).await? {
                return Ok(());
            }
            let acted_on = row.as_ref().map(|r| r.version);
            row = self.store.get(entity, connector_type).await?;
            if row.as_ref().map(|r| r.version) == acted_on {
                return Ok(());
            }
        }
        Err(StoreError::ConditionFailed.into())
    }

    /// One secret call matching `row`; `false` when there is nothing to follow (no secret
    /// claimed, or no row: purge and expiry delete secrets explicitly).
    async fn follow_row(&self, row: Option<&Connector>) -> Result<bool, ApiError> {
        match row {
            Some(r) if r.has_secret() && r.is_active => self.vault.restore(r.entity_id, r.connector_type).await?,
            Some(r) if r.has_secret() => {
                self.vault
                    .schedule_deletion(r.entity_id, r.connector_type, RECOVERY_WINDOW_DAYS)
                    .await?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// After a failed write that followed a secret restore: best-effort reconciliation, so
    /// a disconnected row's credentials do not stay readable.
    async fn settle_secret(&self, row: &Connector) {
        if let Err(e) = self.reconcile_secret(row.entity_id, row.connector_type, None).await {
            tracing::warn!(code = e.code(), "secret left for the sweeper to reconcile");
        }
    }

    /// `POST /v1/integrations/{connector_type}/restore`: undo a disconnect inside the window.
    pub async fn restore(&self, principal: &Principal, connector_type: ConnectorType) -> Result<Connector, ApiError> {
        retry_on_conflict!({
            let row = self.stored(principal, ConnectorRef::Type(connector_type)).await?;
            let now = self.clock.now();
            if row.is_active {
                Ok(row)
            } else if row.is_expired(now) {
                Err(ApiError::RecoveryWindowExpired)
            } else {
                self.restore_row(principal, &row, row.clone(), now).await
            }
        })
    }

    /// `PATCH /v1/integrations/{connector_type}`: edit fields; `is_active` moves the
    /// lifecycle. Events only when something changed.
    pub async fn update(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<Connector, ApiError> {
        retry_on_conflict!({
            let row = self.stored(principal, ConnectorRef::Type(connector_type)).await?;
            let now = self.clock.now();
            if row.is_expired(now) {
                Err(if edits.is_active == Some(true) {
                    ApiError::RecoveryWindowExpired
                } else {
                    not_found()
                })
            } else {
                match lifecycle::edit(principal, &row, edits, now).map_err(lifecycle_error)? {
                    None => Ok(row),
                    Some((next, events)) => {
                        let restoring = events.contains(&EventType::Restored) && row.has_secret();
                        let disconnecting = events.contains(&EventType::Disconnected);
                        if restoring {
                            self.vault.restore(row.entity_id, row.connector_type).await?;
                        }
                        let action =
                            ((disconnecting || restoring) && next.has_secret()).then_some(SecretAction::FollowRow);
                        let committed = self
                            .commit(&next, Some(row.version), &events, principal, action, now)
                            .await;
                        if committed.is_err() && restoring {
                            self.settle_secret(&row).await;
                        }
                        committed.map(|_| next)
                    }
                }
            }
        })
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
        let restoring = !existing.is_active && existing.has_secret();
        if restoring {
            self.vault.restore(principal.entity_id, connector_type).await?;
        }
        let stored = self.store_credentials(principal, existing.clone(), &payload).await;
        if stored.is_err() && restoring {
            self.settle_secret(&existing).await;
        }
        stored
    }

    /// Stores the secret, then the row that points at it. The first attempt writes over
    /// `read` (the row as read before); the version condition catches any change since,
    /// and each retry reads afresh.
    async fn store_credentials(
        &self,
        principal: &Principal,
        read: Connector,
        payload: &SecretPayload,
    ) -> Result<Connector, ApiError> {
        let connector_type = read.connector_type;
        let arn = self.vault.put(principal.entity_id, connector_type, payload).await?;
        let mut first = Some(read);
        retry_on_conflict!({
            let current = match first.take() {
                Some(row) => row,
                None => self.find(principal, ConnectorRef::Type(connector_type)).await?,
            };
            let now = self.clock.now();
            let mut events = Vec::new();
            let base = match lifecycle::restore(&current, now).map_err(lifecycle_error)? {
                Some(restored) => {
                    events.push(EventType::Restored);
                    restored
                }
                None => current.clone(),
            };
            events.push(EventType::CredentialsUpdated);
            let mut next = lifecycle::with_credentials(
                &base,
                payload.key_names(),
                payload.webhook_secret.is_some(),
                arn.clone(),
                now,
            );
            next.version = current.version + 1;
            // When this write restores the row, the secret follows the committed row
            // afterwards too: a disconnect may have deleted it after `put` revived it.
            let action = events.contains(&EventType::Restored).then_some(SecretAction::FollowRow);
            self.commit(&next, Some(current.version), &events, principal, action, now)
                .await
                .map(|_| next)
        })
    }

    /// `DELETE /v1/integrations/{connector}`: disconnect, keeping credentials 7 days.
    pub async fn disconnect(&self, principal: &Principal, r: ConnectorRef) -> Result<(Connector, Outcome), ApiError> {
        retry_on_conflict!({
            let current = self.find(principal, r).await?;
            let now = self.clock.now();
            match lifecycle::disconnect(&current, now) {
                None => {
                    // Already disconnected: no change, no event. Re-assert the secret's
                    // scheduled deletion in case an earlier attempt stopped before it.
                    if current.has_secret() {
                        self.reconcile_secret(current.entity_id, current.connector_type, Some(current.clone()))
                            .await?;
                    }
                    Ok((current, Outcome::Unchanged))
                }
                Some(next) => {
                    let action = next.has_secret().then_some(SecretAction::FollowRow);
                    self.commit(
                        &next,
                        Some(current.version),
                        &[EventType::Disconnected],
                        principal,
                        action,
                        now,
                    )
                    .await
                    .map(|_| (next, Outcome::Changed))
                }
            }
        })
    }

    /// `DELETE /v1/integrations/{connector}?permanent=true`: row and secret gone at once.
    /// If the secret cannot be deleted right now, the outbox record keeps that duty and
    /// the sweeper finishes it; the row is gone either way.
    pub async fn purge(&self, principal: &Principal, r: ConnectorRef) -> Result<(), ApiError> {
        retry_on_conflict!({
            let row = self.find(principal, r).await?;
            let now = self.clock.now();
            let event = Event::new(EventType::Deleted, &row, Some(&principal.key_id), now);
            let record = OutboxRecord::new(&event, row.connector_type, Some(SecretAction::ForceDelete));
            match self.store.delete(&row, std::slice::from_ref(&record)).await {
                Ok(()) => {
                    let _ = self.deliver(&record).await;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Stores `row` with an outbox record per event in one transaction, then delivers
    /// them. The first record carries the secret work (`action`): if that fails the caller
    /// gets the error (429/503) and the record stays for the sweeper to finish; if only
    /// publishing fails, the answer is unaffected and the sweeper re-publishes.
    async fn commit(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        events: &[EventType],
        principal: &Principal,
        action: Option<SecretAction>,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let records: Vec<OutboxRecord> = events
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let event = Event::new(*t, row, Some(&principal.key_id), now);
                OutboxRecord::new(&event, row.connector_type, if i == 0 { action } else { None })
            })
            .collect();
        self.store.save(row, expected_version, &records).await?;
        for record in &records {
            self.deliver_committed(record, row).await?;
        }
        Ok(())
    }

    /// Delivers a record this request has just committed together with `row`. The secret
    /// follows `row` as committed (no re-read), the event goes out, and one call clears
    /// the record while checking that the row has not moved since; if it has, the full
    /// reconciliation runs. Whatever fails after the secret step stays in the outbox for
    /// the sweeper, which reconciles before re-publishing.
    async fn deliver_committed(&self, record: &OutboxRecord, row: &Connector) -> Result<(), ApiError> {
        if record.secret_action != Some(SecretAction::FollowRow) {
            return self.deliver(record).await.map(|_| ());
        }
        self.follow_row(Some(row)).await?;
        if let Err(e) = self.bus.publish(record).await {
            tracing::warn!(event_id = %record.event_id, failure = %e, "event left in the outbox for the sweeper");
            return Ok(());
        }
        match self.store.clear_outbox_if_unchanged(&record.event_id, row).await {
            Ok(true) => {}
            Ok(false) => {
                // Moved while we acted: follow the row as it is now, then clear.
                self.reconcile_secret(row.entity_id, row.connector_type, None).await?;
                if let Err(e) = self.store.clear_outbox(&record.event_id).await {
                    tracing::warn!(event_id = %record.event_id, failure = %e, "published event's outbox record not cleared");
                }
            }
            Err(e) => {
                tracing::warn!(event_id = %record.event_id, failure = %e, "outbox record left for the sweeper to check and clear");
            }
        }
        Ok(())
    }

    /// Delivers an outbox record: its secret work, then the event, then the record is
    /// cleared. Only a failed secret step is an error; a failed publish is left for the
    /// sweeper (and reported as `Ok(false)`).
    pub async fn deliver(&self, record: &OutboxRecord) -> Result<bool, ApiError> {
        match record.secret_action {
            Some(SecretAction::FollowRow) => {
                self.reconcile_secret(record.entity_id, record.connector_type, None)
                    .await?
            }
            Some(SecretAction::ForceDelete) => self.vault.force_delete(record.entity_id, record.connector_type).await?,
            None => {}
        }
        if let Err(e) = self.bus.publish(record).await {
            tracing::warn!(event_id = %record.event_id, failure = %e, "event left in the outbox for the sweeper");
            return Ok(false);
        }
        if let Err(e) = self.store.clear_outbox(&record.event_id).await {
            // Harmless: the sweeper re-publishes it and consumers dedupe on `id`.
            tracing::warn!(event_id = %record.event_id, failure = %e, "published event's outbox record not cleared");
        }
        Ok(true)
    }

    /// Ends a row whose window has passed: `integration.expired` and the row's deletion in
    /// one transaction (conditional on its version), then the secret's deletion and the
    /// event. `Ok(false)`: the row is gone but delivery waits for the next sweep.
    async fn finalize_expiry(&self, row: &Connector, now: Timestamp) -> Result<bool, ApiError> {
        let event = Event::new(EventType::Expired, row, None, now);
        let record = OutboxRecord::new(&event, row.connector_type, Some(SecretAction::ForceDelete));
        self.store.delete(row, std::slice::from_ref(&record)).await?;
        Ok(matches!(self.deliver(&record).await, Ok(true)))
    }

    /// The scheduled sweep: finalise disconnects whose window has passed, then deliver
    /// outbox records their handlers left behind. Reads only the sparse index (no Scan).
    /// Safe to run concurrently with itself and with handlers: every write is conditional.
    pub async fn sweep(&self) -> Result<SweepReport, ApiError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let due = self.store.due_expiries(now, SWEEP_BATCH).await?;
        report.index_items_read += due.items_read;
        for candidate in due.items {
            // The index is eventually consistent: act on the row as it is now.
            let current = self.store.get(candidate.entity_id, candidate.connector_type).await?;
            let Some(row) = current.filter(|row| row.is_expired(now)) else {
                tracing::info!(entity_id = %candidate.entity_id, connector_type = %candidate.connector_type, "skipped: no longer due");
                report.skipped += 1;
                continue;
            };
            match self.finalize_expiry(&row, now).await {
                Ok(true) => report.expired += 1,
                Ok(false) => {
                    report.expired += 1;
                    report.failed += 1;
                }
                Err(ApiError::Conflict { .. }) => {
                    tracing::info!(entity_id = %row.entity_id, connector_type = %row.connector_type, "skipped: changed concurrently");
                    report.skipped += 1
                }
                Err(e) => return Err(e),
            }
        }
        let stale = self
            .store
            .stale_outbox(now.plus_seconds(-OUTBOX_GRACE_SECONDS), SWEEP_BATCH)
            .await?;
        report.index_items_read += stale.items_read;
        for record in stale.items {
            match self.deliver(&record).await {
                Ok(true) => report.republished += 1,
                _ => report.failed += 1,
            }
        }
        tracing::info!(
            expired = report.expired,
            skipped = report.skipped,
            republished = report.republished,
            failed = report.failed,
            index_items_read = report.index_items_read,
            "sweep finished"
        );
        Ok(report)
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
