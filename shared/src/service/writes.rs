//! The write operations: connect (and re-connect), restore, edits, credentials,
//! disconnect and permanent delete, and the sweep's expiry. Each orders its I/O around
//! the rules of `domain::lifecycle`; a write that lost a race on `version` is retried
//! by [`retry_lost_races`].

use super::committed::{self, Committed};
use super::delivery::Known;
use super::*;
use crate::domain::sync;
use crate::domain::versions::{initial_version, slot_label, CredentialVersion};
use crate::planted::{self, Defect};
use crate::ports::{FollowUp, SecretError};

/// A credential version written to the secret, not yet committed.
struct WrittenVersion {
    version: CredentialVersion,
    arn: crate::domain::connector::SecretArn,
    /// Credentials stored before versions existed, recorded with this write.
    initial: Option<CredentialVersion>,
}

impl WrittenVersion {
    /// `row` with the initial version recorded, if the row still records none.
    fn with_initial_version(&self, row: Connector) -> Connector {
        match &self.initial {
            Some(initial) => row.recording_initial(initial),
            None => row,
        }
    }
}

fn rollback_error(e: lifecycle::RollbackError) -> ApiError {
    match e {
        lifecycle::RollbackError::Inactive => ApiError::Conflict {
            code: "connector_inactive",
            hint: "The connector is disconnected; restore it before rolling its credentials back.".into(),
        },
        lifecycle::RollbackError::UnknownVersion => ApiError::not_found_param(
            "version",
            "No such credential version for this connector; list them with GET …/credentials/versions.",
        ),
    }
}

impl Service {
    /// `POST /v1/integrations/{connector_type}`: connect (config only). A disconnected row
    /// inside its window is re-connected instead: same id, kept credentials (200).
    pub async fn connect(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
    ) -> Result<(Connector, Outcome), ApiError> {
        // Checked up front: the re-connect branch applies the fields to an existing row.
        lifecycle::check_mode(principal, edits.mode).map_err(lifecycle_error)?;
        retry_lost_races(|attempt| self.connect_once(principal, connector_type, edits, attempt == 0)).await
    }

    /// One attempt of a connect. The first (`create_first`) tries the conditional create
    /// before any read: most connects create a row, and the create's condition is what
    /// tells a row there. Only when one is (or the attempt lost its claim) is it read.
    async fn connect_once(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
        create_first: bool,
    ) -> Result<(Connector, Outcome), Failure> {
        let now = self.clock.now();
        if create_first {
            match self.create(principal, connector_type, edits, now).await {
                Err(Failure::LostRace) => {} // a row is there: read it and decide below
                created => return created,
            }
        }
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
                self.create(principal, connector_type, edits, now).await
            }
        }
    }

    /// Creates the row, if none is stored (`LostRace` otherwise).
    async fn create(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        edits: &Edits,
        now: Timestamp,
    ) -> Result<(Connector, Outcome), Failure> {
        let row = lifecycle::connect(principal, connector_type, edits, now)?;
        self.commit(&row, None, &[EventType::Connected], principal, None, now)
            .await?;
        Ok((row, Outcome::Created))
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
        let restores = has_secret && !planted::on(Defect::RestoreWithoutSecret);
        if restores {
            let secret = current.secret_ref();
            committed::touching(secret);
            if !planted::on(Defect::NoGuardBeforeReactivation) {
                self.store.guard_secret(&SecretGuard::new(secret, now)).await?;
            }
            self.vault.restore(&secret).await?;
        }
        let follows = restores && !planted::on(Defect::NoFollowRowAfterReactivation);
        let action = follows.then_some(SecretAction::FollowRow);
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
                // Nothing to change; the secret is re-asserted readable, in case an
                // earlier request stopped before its own secret step.
                self.reconcile_secret(row.secret_ref(), Some(row.clone())).await?;
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
                // Nothing to change. Asked for a state the row is in already, the secret
                // is re-asserted to match it, in case an earlier request (this one's
                // first attempt, say) stopped before its secret step.
                if edits.is_active.is_some() {
                    self.reconcile_secret(row.secret_ref(), Some(row.clone())).await?;
                }
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
    /// The values become a new credential version: written to the secret staged, made
    /// current once the row records it. On a disconnected row (inside its window) the
    /// secret is restored first, and the row is active again.
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
        let now = self.clock.now();
        let secret = existing.secret_ref();
        committed::touching(secret);
        // The guard first: if the row is gone by the time the sweeper looks (a permanent
        // delete raced us, or we are killed before our commit), the secret is deleted.
        self.store
            .guard_secret(&SecretGuard::new(existing.secret_ref(), now))
            .await?;
        let written = self.write_version(&existing, &payload, now).await;
        let stored = match written {
            Ok(written) => {
                retry_lost_races(|attempt| {
                    let known = (attempt == 0).then(|| existing.clone());
                    self.store_credentials_once(principal, &existing, known, &written)
                })
                .await
            }
            Err(e) => Err(e),
        };
        if stored.is_err() {
            self.settle_secret(&existing).await;
        }
        stored
    }

    /// Commits the row that records the written version. The first attempt writes over
    /// `known` (the row as read before); the version condition catches any change since,
    /// and each retry reads afresh — and gives up if the connector the secret was written
    /// for (`original`) has been replaced by another one.
    async fn store_credentials_once(
        &self,
        principal: &Principal,
        original: &Connector,
        known: Option<Connector>,
        written: &WrittenVersion,
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
        let current = written.with_initial_version(current);
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
        // `None`: a rollback moved to the version whose slot we took; start over.
        let mut next = lifecycle::with_credentials(&base, written.version.clone(), written.arn.clone(), now)
            .ok_or(Failure::LostRace)?;
        next.version = current.version + 1;
        // A secret's first version is current as soon as it is written; with no version
        // recorded, `make_current` looks up which one is.
        let believed = current.current_version_record().map(|v| v.secret_version_id.clone());
        self.commit_credentials_change(principal, &current, &next, &events, believed.as_deref(), now)
            .await?;
        Ok(next)
    }

    /// Writes `payload` as a new version of `row`'s secret, staged, with the calls the
    /// row says are needed: an active row with a secret, the write alone; a disconnected
    /// one, a restore first; one without a secret, a create first. Where Secrets Manager
    /// disagrees with the row (the secret absent, or scheduled for deletion), the missing
    /// step is taken and the write repeated.
    async fn write_version(
        &self,
        row: &Connector,
        payload: &SecretPayload,
        now: Timestamp,
    ) -> Result<WrittenVersion, ApiError> {
        let secret = row.secret_ref();
        if !row.has_secret() {
            self.vault.create(&secret).await?;
        } else if !row.is_active {
            self.vault.restore(&secret).await?;
        }
        let initial = match row.has_unrecorded_version() {
            true => self.record_initial_version(row).await?,
            false => None,
        };
        let slot_owner = match &initial {
            Some(initial) => row.clone().recording_initial(initial),
            None => row.clone(),
        };
        let version = CredentialVersion::new(
            payload.key_names().into_iter().collect(),
            payload.webhook_secret.is_some(),
            slot_owner.next_version_slot(),
            now,
        );
        let label = version.label();
        let write = || {
            self.vault
                .write_version(&secret, &version.secret_version_id, &label, payload)
        };
        let arn = match write().await {
            Ok(arn) => arn,
            Err(SecretError::Absent) => {
                self.vault.create(&secret).await?;
                write().await?
            }
            Err(SecretError::Scheduled) => {
                self.vault.restore(&secret).await?;
                write().await?
            }
            Err(SecretError::Dependency(e)) => return Err(e.into()),
        };
        Ok(WrittenVersion { version, arn, initial })
    }

    /// Credentials stored before versions existed: their secret version is labelled
    /// (so it stays reachable) and recorded as the initial version by the commit.
    async fn record_initial_version(&self, row: &Connector) -> Result<Option<CredentialVersion>, ApiError> {
        let secret = row.secret_ref();
        let label = slot_label(0);
        let current = match self.vault.label_current(&secret, &label).await {
            Err(SecretError::Scheduled) => {
                self.vault.restore(&secret).await?;
                self.vault.label_current(&secret, &label).await?
            }
            other => other?,
        };
        Ok(current.map(|id| initial_version(row, id, 0)))
    }

    /// `POST /v1/integrations/{connector_type}/credentials/rollback`: the recorded
    /// version `version` becomes current again, through the same commit as a PUT's.
    pub async fn roll_back_credentials(
        &self,
        principal: &Principal,
        connector_type: ConnectorType,
        version: &str,
    ) -> Result<Connector, ApiError> {
        retry_lost_races(|_| async move {
            let row = self.find(principal, ConnectorRef::Type(connector_type)).await?;
            let now = self.clock.now();
            let Some(next) = lifecycle::roll_back(&row, version, now).map_err(rollback_error)? else {
                return Ok(row);
            };
            let believed = row.current_version_record().map(|v| v.secret_version_id.clone());
            self.commit_credentials_change(
                principal,
                &row,
                &next,
                &[EventType::CredentialsUpdated],
                believed.as_deref(),
                now,
            )
            .await?;
            Ok(next)
        })
        .await
    }

    /// Commits a credentials change (a PUT's new version, or a rollback's earlier one)
    /// over `current`, then makes the secret follow: `AWSCURRENT` moves to the version
    /// `next` records, from `believed_current` (the version `current` recorded: a
    /// compare-and-swap), and a secret this change revives is restored.
    async fn commit_credentials_change(
        &self,
        principal: &Principal,
        current: &Connector,
        next: &Connector,
        events: &[EventType],
        believed_current: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Failure> {
        let known = Known {
            was_active: current.is_active,
            believed_current,
        };
        self.commit_knowing(
            next,
            Some(current.version),
            events,
            principal,
            Some(SecretAction::FollowRow),
            now,
            known,
        )
        .await
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
    /// If the secret cannot be deleted right now, the answer is that failure (429/503),
    /// not a 204 over a secret still readable: the row is gone either way, the outbox
    /// record keeps the deletion for the sweeper, and a retry with the same
    /// `Idempotency-Key` deletes the secret before it replays the 204.
    pub async fn purge(&self, principal: &Principal, r: ConnectorRef) -> Result<(), ApiError> {
        retry_lost_races(|_| async move {
            let row = self.find(principal, r).await?;
            let now = self.clock.now();
            let event = Event::new(EventType::Deleted, &row, Some(&principal.key_id), now);
            let record = OutboxRecord::new(&event, &row, Some(SecretAction::ForceDelete));
            let committed = Committed {
                row: None,
                created: false,
                follow_up: FollowUp {
                    secret: row.secret_ref(),
                    action: SecretAction::ForceDelete,
                },
            };
            let answer = committed::key_answer(&committed);
            self.store
                .delete(&row, std::slice::from_ref(&record), answer.as_ref())
                .await?;
            committed::note(committed);
            match self.deliver(std::slice::from_ref(&record)).await {
                Err(e) if !planted::on(Defect::PurgeIgnoresFailedDeletion) => Err(e.into()),
                _ => Ok(()),
            }
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
        let known = Known::default();
        self.commit_knowing(row, expected_version, events, principal, action, now, known)
            .await
    }

    /// [`Service::commit`], with what the request knows of the secret (see [`Known`]).
    #[allow(clippy::too_many_arguments)]
    async fn commit_knowing(
        &self,
        row: &Connector,
        expected_version: Option<u64>,
        events: &[EventType],
        principal: &Principal,
        action: Option<SecretAction>,
        now: Timestamp,
        known: Known<'_>,
    ) -> Result<(), Failure> {
        let events = with_health_change(row, events);
        let records: Vec<OutboxRecord> = events
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let event = Event::new(*t, row, Some(&principal.key_id), now);
                OutboxRecord::new(&event, row, if i == 0 { action } else { None })
            })
            .collect();
        // The key's answer is committed with the change: it is the request's answer from
        // then on, whatever fails after this point; a replay makes the secret follow the
        // row first, as the records' delivery does.
        let committed = Committed {
            row: Some(row.clone()),
            created: expected_version.is_none(),
            follow_up: FollowUp {
                secret: row.secret_ref(),
                action: SecretAction::FollowRow,
            },
        };
        let answer = committed::key_answer(&committed);
        self.store
            .save(row, expected_version, &records, answer.as_ref())
            .await?;
        committed::note(committed);
        self.deliver_committed(&records, row, known).await
    }

    /// Ends a row whose window has passed: `integration.expired` and the row's deletion in
    /// one transaction (conditional on its version), then the secret's deletion and the
    /// event. `Ok(false)`: the row is gone but delivery waits for the next sweep.
    pub(super) async fn finalize_expiry(&self, row: &Connector, now: Timestamp) -> Result<bool, Failure> {
        let event = Event::new(EventType::Expired, row, None, now);
        let record = OutboxRecord::new(&event, row, Some(SecretAction::ForceDelete));
        self.store.delete(row, std::slice::from_ref(&record), None).await?;
        Ok(matches!(self.deliver(std::slice::from_ref(&record)).await, Ok(true)))
    }
}

/// `events`, plus `integration.health_changed` when the change built on `row` moved the
/// health it shows (a reset by credentials, rollback, restore or re-connect).
fn with_health_change(row: &Connector, events: &[EventType]) -> Vec<EventType> {
    let mut events = events.to_vec();
    if row.health_before.is_some_and(|before| before != sync::health(row)) {
        events.push(EventType::HealthChanged);
    }
    events
}
