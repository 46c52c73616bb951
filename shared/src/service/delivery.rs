//! Outbox delivery and the secret's reconciliation with its row.
//!
//! Every secret action is bound to one connector ([`SecretRef`]: the secret is named from
//! the connector's id) and is idempotent: scheduling, restoring or force-deleting the
//! secret of connector X touches X's secret only, and doing it again changes nothing
//! unless X's row has moved since — in which case following the row is what must happen.
//! So a record re-delivered a day later can never reach a newer connector's secret.

use crate::after_answer;
use crate::domain::connector::Connector;
use crate::domain::error::ApiError;
use crate::domain::lifecycle::RECOVERY_WINDOW_DAYS;
use crate::planted::{self, Defect};
use crate::ports::{FollowUp, OutboxRecord, SecretAction, SecretError, SecretRef};

use super::{lost_race, Failure, Service};

/// What a request that has just committed knows of its connector's secret, so that the
/// secret step after the commit makes only the calls it needs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Known<'a> {
    /// The row was active before the commit too: its secret is live (no restore).
    pub was_active: bool,
    /// The secret version holding `AWSCURRENT` before the commit, as its row recorded it.
    pub believed_current: Option<&'a str>,
}

/// How often a secret is re-aligned with a row that keeps moving before giving up (the
/// outbox record then keeps the duty for the sweeper).
const RECONCILE_ROUNDS: usize = 5;

impl Service {
    /// Makes the secret of `secret`'s connector follow its row — live while the row is
    /// active, scheduled for deletion while it is disconnected — starting from `known` (the
    /// row as just read) or a fresh read, and re-reads the row after acting, acting again
    /// if it moved meanwhile. Concurrent requests may each act on what they read; the last
    /// to act has read the last state, so the secret ends up matching the row. A
    /// connector whose row is gone, or now belongs to another connector (another id), is
    /// gone for good: its secret is scheduled for deletion (a credentials write that
    /// landed after a permanent delete must not leave it readable), and purge, expiry or
    /// the sweeper's guard deletes it for good.
    pub(super) async fn reconcile_secret(&self, secret: SecretRef, known: Option<Connector>) -> Result<(), ApiError> {
        let mut row = match known {
            Some(row) => Some(row),
            None => self.store.get(secret.entity_id, secret.connector_type).await?,
        };
        for _ in 0..RECONCILE_ROUNDS {
            let own = row.as_ref().filter(|r| r.id == secret.connector_id);
            if own.is_none() {
                if !planted::on(Defect::GoneConnectorSecretKept) {
                    self.vault.schedule_deletion(&secret, RECOVERY_WINDOW_DAYS).await?;
                }
                return Ok(());
            }
            if !self.follow_row(own, None).await? {
                return Ok(());
            }
            let acted_on = own.map(|r| r.version);
            row = self.store.get(secret.entity_id, secret.connector_type).await?;
            if row.as_ref().filter(|r| r.id == secret.connector_id).map(|r| r.version) == acted_on {
                return Ok(());
            }
        }
        Err(lost_race())
    }

    /// The secret calls matching `row`; `false` when there is nothing to follow (no row,
    /// or an active row without credentials). A disconnected row's secret is scheduled
    /// for deletion even if the row records none: a credentials write killed between its
    /// secret and its commit may have left one, and it must not stay readable (or outlive
    /// a row that TTL removes). An active row's secret is restored, and its current
    /// version made the one the row records (moved from `believed_current` if given).
    async fn follow_row(&self, row: Option<&Connector>, believed_current: Option<&str>) -> Result<bool, ApiError> {
        match row {
            Some(r) if !r.is_active && (r.has_secret() || !planted::on(Defect::ScheduleOnlyClaimedSecrets)) => {
                self.vault
                    .schedule_deletion(&r.secret_ref(), RECOVERY_WINDOW_DAYS)
                    .await?
            }
            Some(r) if r.has_secret() => {
                self.vault.restore(&r.secret_ref()).await?;
                self.follow_current_version(r, believed_current).await?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Makes the version `row` records as current the secret's `AWSCURRENT`. A secret
    /// that is absent or scheduled meanwhile is left alone: the row is re-read after
    /// every secret step, and what it says then is followed.
    async fn follow_current_version(&self, row: &Connector, believed_current: Option<&str>) -> Result<(), ApiError> {
        let Some(version) = row.current_version_record() else {
            return Ok(()); // credentials stored before versions: nothing moved since
        };
        match self
            .vault
            .make_current(&row.secret_ref(), &version.secret_version_id, believed_current)
            .await
        {
            Ok(()) | Err(SecretError::Absent | SecretError::Scheduled) => Ok(()),
            Err(SecretError::Dependency(e)) => Err(e.into()),
        }
    }

    /// The secret step right after a commit of `row`, with what the request knows: a row
    /// that was active and still is needs no restore, only its current version moved.
    async fn follow_committed(&self, row: &Connector, known: Known<'_>) -> Result<(), ApiError> {
        if row.is_active && known.was_active && row.has_secret() {
            self.follow_current_version(row, known.believed_current).await
        } else {
            self.follow_row(Some(row), known.believed_current).await.map(|_| ())
        }
    }

    /// Redoes the secret work after a committed write (see [`FollowUp`]) before its
    /// answer is replayed: the secret follows its row, or a removed connector's secret is
    /// deleted. Idempotent; an error (429/503) means the replay must wait.
    pub async fn follow_up(&self, follow_up: FollowUp) -> Result<(), ApiError> {
        match follow_up.action {
            SecretAction::FollowRow => self.reconcile_secret(follow_up.secret, None).await,
            SecretAction::ForceDelete => Ok(self.vault.force_delete(&follow_up.secret).await?),
        }
    }

    /// After a failed write that followed a secret restore or write: best-effort
    /// reconciliation, so a disconnected or removed connector's credentials do not stay
    /// readable.
    pub(super) async fn settle_secret(&self, row: &Connector) {
        if let Err(e) = self.reconcile_secret(row.secret_ref(), None).await {
            tracing::warn!(code = e.code(), "secret left for the sweeper to reconcile");
        }
    }

    /// Delivers the records this request has just committed together with `row` (the
    /// first one carries the secret work). The secret follows `row` as committed (no
    /// re-read); the events go out in one call, after that step where it grants access and
    /// beside it where it takes access away; the first record is cleared by a call that
    /// checks that the row has not moved since (if it has, the full reconciliation runs),
    /// the others beside it. Whatever fails after the secret step stays in the outbox
    /// for the sweeper, which reconciles before re-publishing. The change is committed:
    /// only a failed secret step is reported (429/503), and it is never a lost race.
    ///
    /// Where the request collects after-answer work ([`after_answer`]), the secret step
    /// still comes first and the publish and clear run after the answer: the answer
    /// depends on neither, and a consumer still hears of a change only once its secret
    /// step holds.
    pub(super) async fn deliver_committed(
        &self,
        records: &[OutboxRecord],
        row: &Connector,
        known: Known<'_>,
    ) -> Result<(), Failure> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        if first.secret_action != Some(SecretAction::FollowRow) {
            return self.deliver(records).await.map(|_| ()).map_err(Failure::Api);
        }
        if after_answer::collecting() {
            let followed = self.follow_committed(row, known).await;
            self.announce_after_answer(records, Some(row), followed.is_ok(), row.is_active)
                .await;
            return followed.map_err(Failure::from);
        }
        let published = if row.is_active {
            // The step grants access (restore, a version made current): a consumer told
            // of it may read the secret at once, so it is announced only once it holds.
            self.follow_committed(row, known).await?;
            self.publish(records).await
        } else {
            // The step only takes access away: announcing it meanwhile tells no consumer
            // anything the secret contradicts, and saves a round trip. A failed step is
            // still the answer, and the record stays for the sweeper, which re-announces.
            let (followed, published) = tokio::join!(self.follow_committed(row, known), self.publish(records));
            followed?;
            published
        };
        if published {
            self.clear_committed(records, row).await;
        }
        Ok(())
    }

    /// Hands the records' publish and clear to after the answer ([`after_answer::defer`]),
    /// with the ordering the inline paths keep: after a secret step that may grant access
    /// (`may_grant`), nothing is announced unless the step held; one that only takes
    /// access away is announced even if it failed. A record is cleared only if the step
    /// held (otherwise it still owes it to the sweeper): with `row`, as
    /// [`Service::clear_committed`] clears; without, each on its own.
    async fn announce_after_answer(
        &self,
        records: &[OutboxRecord],
        row: Option<&Connector>,
        step_held: bool,
        may_grant: bool,
    ) {
        if !step_held && may_grant {
            return;
        }
        let (service, records, row) = (self.clone(), records.to_vec(), row.cloned());
        after_answer::defer(async move {
            if !service.publish(&records).await || !step_held {
                return;
            }
            match &row {
                Some(row) => service.clear_committed(&records, row).await,
                None => service.clear_all(&records).await,
            }
        })
        .await;
    }

    /// Clears published records a request committed with `row`. The first carries the
    /// duty to make the secret follow the row: it is cleared by a call that checks that
    /// the row has not moved since; if it has, the row as it is now is followed first,
    /// and if it keeps moving the record stays for the sweeper. The others clear
    /// independently.
    async fn clear_committed(&self, records: &[OutboxRecord], row: &Connector) {
        let Some((first, rest)) = records.split_first() else {
            return;
        };
        let check_first = async {
            match self.store.clear_outbox_if_unchanged(&first.event_id, row).await {
                Ok(true) => {}
                Ok(false) => {
                    // Moved while we acted: follow the row as it is now, then clear. If it
                    // keeps moving, the record stays and the sweeper reconciles.
                    if self.reconcile_secret(row.secret_ref(), None).await.is_ok() {
                        self.clear(first).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(event_id = %first.event_id, failure = %e, "outbox record left for the sweeper to check and clear");
                }
            }
        };
        // Only the first record carries the secret duty; the others clear independently.
        tokio::join!(check_first, self.clear_all(rest));
    }

    /// The records' secret work, in order.
    async fn secret_steps(&self, records: &[OutboxRecord]) -> Result<(), ApiError> {
        for record in records {
            let secret = record.secret_ref();
            match record.secret_action {
                Some(SecretAction::FollowRow) => self.reconcile_secret(secret, None).await?,
                Some(SecretAction::ForceDelete) => self.vault.force_delete(&secret).await?,
                None => {}
            }
        }
        Ok(())
    }

    /// Delivers outbox records: each one's secret work in order, and their events in one
    /// call — after the secret work where it may grant access (`FollowRow` may restore),
    /// beside it where it only takes access away (a force-delete) — then each record is
    /// cleared. Only a failed secret step is an error (the records stay for the sweeper,
    /// which re-announces them); a failed publish leaves them for the sweeper too and is
    /// reported as `Ok(false)`. Where the request collects after-answer work
    /// ([`after_answer`]), the secret work is done first and the publish and clear run
    /// after the answer (`Ok(true)`: handed over).
    pub async fn deliver(&self, records: &[OutboxRecord]) -> Result<bool, ApiError> {
        let may_grant = records.iter().any(|r| r.secret_action == Some(SecretAction::FollowRow));
        if after_answer::collecting() {
            let done = self.secret_steps(records).await;
            self.announce_after_answer(records, None, done.is_ok(), may_grant).await;
            return done.map(|()| true);
        }
        let secret_work = self.secret_steps(records);
        let published = if may_grant {
            secret_work.await?;
            self.publish(records).await
        } else {
            let (done, published) = tokio::join!(secret_work, self.publish(records));
            done?;
            published
        };
        if !published {
            return Ok(false);
        }
        self.clear_all(records).await;
        Ok(true)
    }

    /// Clears published records, side by side: each is independent of the others.
    async fn clear_all(&self, records: &[OutboxRecord]) {
        futures::future::join_all(records.iter().map(|r| self.clear(r))).await;
    }

    /// Publishes the records' events in one call; `false` (and the records left for the
    /// sweeper) if the bus failed.
    async fn publish(&self, records: &[OutboxRecord]) -> bool {
        if records.is_empty() {
            return true; // e.g. a sync report that changed no health: no call at all
        }
        match self.bus.publish(records).await {
            Ok(()) => true,
            Err(e) => {
                let ids: Vec<&str> = records.iter().map(|r| r.event_id.as_str()).collect();
                tracing::warn!(event_ids = ?ids, failure = %e, "events left in the outbox for the sweeper");
                false
            }
        }
    }

    /// Clears a published record. A failure is harmless: the sweeper re-publishes it and
    /// consumers dedupe on `id`.
    async fn clear(&self, record: &OutboxRecord) {
        if let Err(e) = self.store.clear_outbox(&record.event_id).await {
            tracing::warn!(event_id = %record.event_id, failure = %e, "published event's outbox record not cleared");
        }
    }
}
