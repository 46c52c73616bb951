//! The application service: each public method is one API operation, written against the
//! ports only. Rules come from `domain`; this layer orders the I/O around them. Outbox
//! delivery and secret reconciliation live in [`delivery`], the scheduled sweep in
//! [`sweep`].

mod committed;
mod delivery;
mod sweep;
mod sync_reports;
mod writes;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

pub use committed::{CommitWitness, Committed, KeyClaim};
pub use sweep::{
    first_shard, SweepBudget, SweepReport, SWEEP_BATCH, SWEEP_MARGIN_MS, SWEEP_PARALLELISM, UNDELIVERED_ALARM_SECONDS,
};

use crate::domain::api_key::{bearer_token, parse_key, AuthError, Principal};
use crate::domain::catalog::ConnectorType;
use crate::domain::connector::{Connector, Mode};
use crate::domain::credentials::{self, SecretPayload};
use crate::domain::edits::Edits;
use crate::domain::error::ApiError;
use crate::domain::event::{Event, EventType};
use crate::domain::ids::ConnectorId;
use crate::domain::lifecycle::{self, LifecycleError};
use crate::domain::sync::{self, Health};
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
    pub health: Option<Health>,
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

#[derive(Clone)]
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
            .filter(|row| query.health.is_none_or(|h| sync::health(row) == h))
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
}

fn lifecycle_error(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::LiveModeWithTestKey => {
            ApiError::unprocessable("mode", "A test key can only use sandbox connectors.")
        }
        LifecycleError::WindowExpired => ApiError::RecoveryWindowExpired,
    }
}
