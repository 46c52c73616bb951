//! The scheduled sweep: expiries, left-behind outbox records, and secret guards, each
//! found through the sparse `due` index (never a Scan). One bad or failing item is
//! skipped and counted; it never stops the sweep for everyone else.

use crate::domain::connector::Connector;
use crate::domain::error::ApiError;
use crate::domain::time::Timestamp;
use crate::ports::{OutboxRecord, SecretGuard, GUARD_GRACE_SECONDS};

use super::{Failure, Service};

/// How many due items one sweep handles of each kind; the rest wait for the next run.
pub const SWEEP_BATCH: usize = 500;

/// An outbox record still undelivered this long after its event is counted in
/// `undelivered` (the sweeper's metric, which an alarm watches).
pub const UNDELIVERED_ALARM_SECONDS: i64 = 3600;

/// What one sweep did (logged as one summary line, and published as metrics, per run).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Expired disconnects finalised: `integration.expired`, row deleted, secret gone.
    pub expired: usize,
    /// Index entries that were no longer due when re-read (restored, or raced).
    pub skipped: usize,
    /// Left-behind outbox records delivered.
    pub republished: usize,
    /// Deliveries or expiries that failed again and wait for a later run (with back-off).
    pub failed: usize,
    /// Failed records older than [`UNDELIVERED_ALARM_SECONDS`].
    pub undelivered: usize,
    /// Secrets deleted because their connector row was gone (found by their guard).
    pub orphans_deleted: usize,
    /// Guards whose connector row exists: the row owns its secret; the guard is removed.
    pub guards_cleared: usize,
    /// Index items that could not be decoded: skipped, logged and counted.
    pub bad_items: usize,
    /// Items the index queries read: proportional to what was due, not to the table.
    pub index_items_read: usize,
}

impl Service {
    /// The scheduled sweep: finalise disconnects whose window has passed, deliver outbox
    /// records their handlers left behind, and delete secrets whose row is gone. Safe to
    /// run concurrently with itself and with handlers: every write is conditional and
    /// every secret action is bound to its connector.
    pub async fn sweep(&self) -> Result<SweepReport, ApiError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        self.sweep_expiries(now, &mut report).await?;
        self.sweep_outbox(now, &mut report).await?;
        self.sweep_guards(now, &mut report).await?;
        tracing::info!(
            expired = report.expired,
            skipped = report.skipped,
            republished = report.republished,
            failed = report.failed,
            undelivered = report.undelivered,
            orphans_deleted = report.orphans_deleted,
            guards_cleared = report.guards_cleared,
            bad_items = report.bad_items,
            index_items_read = report.index_items_read,
            "sweep finished"
        );
        Ok(report)
    }

    async fn sweep_expiries(&self, now: Timestamp, report: &mut SweepReport) -> Result<(), ApiError> {
        let due = self.store.due_expiries(now, SWEEP_BATCH).await?;
        report.index_items_read += due.items_read;
        report.bad_items += due.bad_items;
        for candidate in due.items {
            match self.expire(&candidate, now).await {
                Ok(Some(true)) => report.expired += 1,
                Ok(Some(false)) => {
                    report.expired += 1;
                    report.failed += 1;
                }
                Ok(None) | Err(Failure::LostRace) => {
                    tracing::info!(entity_id = %candidate.entity_id, connector_type = %candidate.connector_type, "skipped: no longer due");
                    report.skipped += 1;
                }
                Err(Failure::Api(e)) => {
                    tracing::warn!(entity_id = %candidate.entity_id, connector_type = %candidate.connector_type, code = e.code(), "expiry failed; retried next run");
                    report.failed += 1;
                }
            }
        }
        Ok(())
    }

    /// Expires the row the index named, re-read (the index is eventually consistent):
    /// `None` if it is no longer due, else whether delivery finished too.
    async fn expire(&self, candidate: &Connector, now: Timestamp) -> Result<Option<bool>, Failure> {
        let current = self.store.get(candidate.entity_id, candidate.connector_type).await?;
        match current.filter(|row| row.id == candidate.id && row.is_expired(now)) {
            Some(row) => Ok(Some(self.finalize_expiry(&row, now).await?)),
            None => Ok(None),
        }
    }

    async fn sweep_outbox(&self, now: Timestamp, report: &mut SweepReport) -> Result<(), ApiError> {
        let due = self.store.due_outbox(now, SWEEP_BATCH).await?;
        report.index_items_read += due.items_read;
        report.bad_items += due.bad_items;
        for record in due.items {
            if matches!(self.deliver(&record).await, Ok(true)) {
                report.republished += 1;
                continue;
            }
            report.failed += 1;
            if record.created_at.seconds_until(now) >= UNDELIVERED_ALARM_SECONDS {
                report.undelivered += 1;
                tracing::error!(event_id = %record.event_id, attempts = record.attempts + 1, "outbox record still undelivered");
            }
            self.back_off(&record, now).await;
        }
        Ok(())
    }

    /// Pushes a failing record's next attempt back, so that it does not take a share of
    /// every run.
    async fn back_off(&self, record: &OutboxRecord, now: Timestamp) {
        if let Err(e) = self.store.reschedule_outbox(&record.after_failed_attempt(now)).await {
            tracing::warn!(event_id = %record.event_id, failure = %e, "back-off not stored; retried next run");
        }
    }

    async fn sweep_guards(&self, now: Timestamp, report: &mut SweepReport) -> Result<(), ApiError> {
        let due = self
            .store
            .due_guards(now.plus_seconds(-GUARD_GRACE_SECONDS), SWEEP_BATCH)
            .await?;
        report.index_items_read += due.items_read;
        report.bad_items += due.bad_items;
        for guard in due.items {
            match self.check_guard(&guard).await {
                Ok(true) => report.guards_cleared += 1,
                Ok(false) => report.orphans_deleted += 1,
                Err(e) => {
                    tracing::warn!(connector_id = %guard.secret.connector_id, code = e.code(), "guard check failed; retried next run");
                    report.failed += 1;
                }
            }
        }
        Ok(())
    }

    /// `true` if the guard's connector row exists: the secret is made to follow it (a
    /// write killed after reviving a disconnected row's secret must not leave it
    /// readable), and the row owns it from here on (purge and expiry delete it). `false`
    /// after deleting the secret of a row that is gone: a row, once gone, never comes
    /// back with the same id, so the deletion cannot race a newer owner.
    async fn check_guard(&self, guard: &SecretGuard) -> Result<bool, ApiError> {
        let secret = guard.secret;
        let row = self.store.get(secret.entity_id, secret.connector_type).await?;
        let own = row.filter(|r| r.id == secret.connector_id);
        let owned = own.is_some();
        match own {
            Some(row) => self.reconcile_secret(secret, Some(row)).await?,
            None => self.vault.force_delete(&secret).await?,
        }
        self.store.clear_guard(guard).await?;
        Ok(owned)
    }
}
