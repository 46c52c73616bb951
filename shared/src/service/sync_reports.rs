//! Sync reports: a worker's outcome moves the connector's sync state (an item of its own,
//! never the row), with `integration.health_changed` in the same transaction when the
//! health shown moves. Reports come over HTTP (a key of the entity) or over the bus (the
//! `sync` function, which names the entity and connector in the event).

use super::committed::{self, Committed};
use super::*;
use crate::domain::api_key::KeyId;
use crate::domain::ids::EntityId;
use crate::domain::sync::{self, SyncReport};
use crate::ports::{FollowUp, KeyAnswer};

/// Where a report came from: who the event names as its actor.
#[derive(Clone, Copy)]
enum Reporter<'a> {
    Key(&'a Principal),
    Bus,
}

impl Service {
    /// `POST /v1/integrations/{connector}/sync-reports`: the row as it is after the report
    /// (unchanged when the report is late, repeated or changes nothing).
    pub async fn report_sync(
        &self,
        principal: &Principal,
        r: ConnectorRef,
        body: &Value,
    ) -> Result<Connector, ApiError> {
        let report = sync::parse_report(body, self.clock.now())?;
        retry_lost_races(|_| async {
            let row = self.find(principal, r).await?;
            self.apply_report(row, &report, Reporter::Key(principal)).await
        })
        .await
    }

    /// A report from the bus (`sync.reported`): the connector is named by entity and id,
    /// whatever its mode. Errors as for [`Service::report_sync`]: 404 for an unknown (or
    /// expired) connector, 409 `connector_inactive`, 429/503 for a dependency.
    pub async fn report_sync_from_bus(
        &self,
        entity_id: EntityId,
        connector_id: ConnectorId,
        report: &SyncReport,
    ) -> Result<Connector, ApiError> {
        retry_lost_races(|_| async {
            let now = self.clock.now();
            let row = self
                .store
                .list(entity_id)
                .await?
                .into_iter()
                .find(|row| row.id == connector_id && !row.is_expired(now))
                .ok_or_else(not_found)?;
            self.apply_report(row, report, Reporter::Bus).await
        })
        .await
    }

    async fn apply_report(&self, row: Connector, report: &SyncReport, by: Reporter<'_>) -> Result<Connector, Failure> {
        if !row.is_active {
            return Err(Failure::Api(connector_inactive()));
        }
        let now = self.clock.now();
        let Some(state) = sync::apply_report(&row, report, now) else {
            return Ok(row);
        };
        let next = Connector {
            health_before: Some(sync::health(&row)),
            sync: Some(state.clone()),
            ..row.clone()
        };
        let actor: Option<&KeyId> = match by {
            Reporter::Key(principal) => Some(&principal.key_id),
            Reporter::Bus => None,
        };
        let records: Vec<OutboxRecord> = (sync::health(&next) != sync::health(&row))
            .then(|| {
                let event = Event::new(EventType::HealthChanged, &next, actor, now);
                OutboxRecord::new(&event, &next, None)
            })
            .into_iter()
            .collect();
        let committed = Committed {
            row: Some(next.clone()),
            created: false,
            follow_up: FollowUp {
                secret: row.secret_ref(),
                action: SecretAction::FollowRow,
            },
        };
        // A report touches no secret: a replay has nothing to redo first.
        let answer = committed::key_answer(&committed).map(|a| KeyAnswer { follow_up: None, ..a });
        self.store.save_sync(&row, &state, &records, answer.as_ref()).await?;
        committed::note(committed);
        // Published or left for the sweeper: the answer is the same either way.
        let _ = self.deliver(&records).await;
        Ok(next)
    }
}

/// A report (or a credentials rollback) for a disconnected connector.
pub(super) fn connector_inactive() -> ApiError {
    ApiError::Conflict {
        code: "connector_inactive",
        hint: "The connector is disconnected; restore it first.".into(),
    }
}
