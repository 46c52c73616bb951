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
use crate::domain::ids::ConnectorId;
use crate::domain::lifecycle::{self, LifecycleError, RECOVERY_WINDOW_DAYS};
use crate::domain::time::Timestamp;
use crate::ports::{Clock, ConnectorStore, EventBus, KeyStore, StoreError, Vault};

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
        segment
            .parse()
            .map(ConnectorRef::Id)
            .map_err(|_| unknown_type())
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

pub struct Service {
    pub store: Arc<dyn ConnectorStore>,
    pub keys: Arc<dyn KeyStore>,
    pub vault: Arc<dyn Vault>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
}

impl Service {
    /// Resolves the `Authorization` header to a principal.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, ApiError> {
        let token = bearer_token(authorization)?;
        let presented = parse_key(token).ok_or(AuthError::Invalid)?;
        let record = self
            .keys
            .find(&presented.hash)
            .await?
            .ok_or(AuthError::Invalid)?;
        Ok(record.authenticate(&presented, self.clock.now())?)
    }

    /// The caller's row named by `r`, if it exists for them: same entity, visible to the
    /// key's mode, and not past its recovery window.
    async fn find(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        let now = self.clock.now();
        let row = match r {
            ConnectorRef::Type(t) => self.store.get(principal.entity_id, t).await?,
            ConnectorRef::Id(id) => self
                .store
                .list(principal.entity_id)
                .await?
                .into_iter()
                .find(|row| row.id == id),
        };
        row.filter(|row| row.is_visible_to(principal) && !row.is_expired(now))
            .ok_or_else(not_found)
    }

    pub async fn get(&self, principal: &Principal, r: ConnectorRef) -> Result<Connector, ApiError> {
        self.find(principal, r).await
    }

    /// Newest first (`created_at`, then `id`), cursor-paginated like Stripe lists.
    pub async fn list(
        &self,
        principal: &Principal,
        query: &ListQuery,
    ) -> Result<ListPage, ApiError> {
        let now = self.clock.now();
        let mut visible: Vec<Connector> = self
            .store
            .list(principal.entity_id)
            .await?
            .into_iter()
            .filter(|row| row.is_visible_to(principal) && !row.is_expired(now))
            .collect();
        visible.sort_by(|a, b| (b.created_at, b.id).cmp(&(a.created_at, a.id)));
        let position_of = |id: ConnectorId, param: &str| {
            visible.iter().position(|row| row.id == id).ok_or_else(|| {
                ApiError::bad_request(
                    param,
                    format!("`{param}` does not name a connector of this API key."),
                )
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

    /// `POST /v1/integrations/{connector_type}`: connect (config only).
    pub async fn connect(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<(Connector, Outcome), ApiError> {
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.clock.now();
            let existing = self.store.get(principal.entity_id, connector_type).await?;
            let expected_version = match &existing {
                Some(row) if !row.is_expired(now) => {
                    return Err(ApiError::Conflict {
                        code: "already_connected",
                        hint: format!("This entity already has a {connector_type} connector; edit it with PATCH or disconnect it first."),
                    })
                }
                // A row past its window is gone for readers; replace it in place.
                Some(expired) => Some(expired.version),
                None => None,
            };
            let mut row = lifecycle::connect(principal, connector_type, edits, now)
                .map_err(live_mode_error)?;
            if let Some(v) = expected_version {
                row.version = v + 1;
            }
            match self
                .commit(
                    &row,
                    expected_version,
                    &[EventType::Connected],
                    principal,
                    now,
                )
                .await
            {
                Err(StoreError::ConditionFailed) => continue,
                result => {
                    return result
                        .map(|_| (row, Outcome::Created))
                        .map_err(ApiError::from)
                }
            }
        }
        Err(StoreError::ConditionFailed.into())
    }

    /// `PUT /v1/integrations/{connector_type}/credentials`: write-only credential intake.
    pub async fn put_credentials(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        credentials: &Value,
        webhook_secret: Option<&Value>,
    ) -> Result<Connector, ApiError> {
        let payload: SecretPayload =
            credentials::validate(connector_type, credentials, webhook_secret)
                .map_err(|e| ApiError::unprocessable(e.param(), e.to_string()))?;
        // Existence first, so that credentials for an unknown connector are never stored.
        self.find(principal, ConnectorRef::Type(connector_type))
            .await?;
        let arn = self
            .vault
            .put(principal.entity_id, connector_type, &payload)
            .await?;
        for _ in 0..WRITE_ATTEMPTS {
            let current = self
                .find(principal, ConnectorRef::Type(connector_type))
                .await?;
            let now = self.clock.now();
            let next = lifecycle::with_credentials(
                &current,
                payload.key_names(),
                payload.webhook_secret.is_some(),
                arn.clone(),
                now,
            );
            match self
                .commit(
                    &next,
                    Some(current.version),
                    &[EventType::CredentialsUpdated],
                    principal,
                    now,
                )
                .await
            {
                Err(StoreError::ConditionFailed) => continue,
                result => return result.map(|_| next).map_err(ApiError::from),
            }
        }
        Err(StoreError::ConditionFailed.into())
    }

    /// `DELETE /v1/integrations/{connector}`: disconnect, keeping credentials 7 days.
    pub async fn disconnect(
        &self,
        principal: &Principal,
        r: ConnectorRef,
    ) -> Result<(Connector, Outcome), ApiError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.find(principal, r).await?;
            let now = self.clock.now();
            let Some(next) = lifecycle::disconnect(&current, now) else {
                // Already disconnected: no change, no event. Re-assert the secret's
                // scheduled deletion in case an earlier attempt stopped before it.
                self.schedule_secret_deletion(&current).await?;
                return Ok((current, Outcome::Unchanged));
            };
            match self
                .commit(
                    &next,
                    Some(current.version),
                    &[EventType::Disconnected],
                    principal,
                    now,
                )
                .await
            {
                Err(StoreError::ConditionFailed) => continue,
                Err(e) => return Err(e.into()),
                Ok(()) => {
                    self.schedule_secret_deletion(&next).await?;
                    return Ok((next, Outcome::Changed));
                }
            }
        }
        Err(StoreError::ConditionFailed.into())
    }

    async fn schedule_secret_deletion(&self, row: &Connector) -> Result<(), ApiError> {
        if row.has_secret() {
            self.vault
                .schedule_deletion(row.entity_id, row.connector_type, RECOVERY_WINDOW_DAYS)
                .await?;
        }
        Ok(())
    }

    /// Stores `row` with an outbox record per event in one transaction, then publishes
    /// and clears them. A publish failure leaves the record for the sweeper: the caller's
    /// answer does not depend on the bus.
    async fn commit(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        events: &[EventType],
        principal: &Principal,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let events: Vec<Event> = events
            .iter()
            .map(|t| Event::new(*t, row, Some(&principal.key_id), now))
            .collect();
        self.store.save(row, expected_version, &events).await?;
        for event in &events {
            self.deliver(event).await;
        }
        Ok(())
    }

    /// Publishes an event whose outbox record is stored, then clears the record.
    pub async fn deliver(&self, event: &Event) -> bool {
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(event_id = %event.id, failure = %e, "event left in the outbox for the sweeper");
            return false;
        }
        if let Err(e) = self.store.clear_outbox(&event.id).await {
            // Harmless: the sweeper re-publishes it and consumers dedupe on `id`.
            tracing::warn!(event_id = %event.id, failure = %e, "published event's outbox record not cleared");
        }
        true
    }
}

fn live_mode_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::LiveModeWithTestKey => {
            ApiError::unprocessable("mode", "A test key can only use sandbox connectors.")
        }
    }
}
