//! The scheduled sweep: expiries, left-behind outbox records, and secret guards, each
//! found through the sparse `due` index (never a Scan). One bad or failing item is
//! skipped, counted and backed off; it never stops the sweep for everyone else.
//!
//! A run has a time budget (the invocation's deadline): it starts no new item within
//! [`SWEEP_MARGIN_MS`] of it, and its report is kept up to date item by item, so that
//! whatever stops the run, its metrics describe what it did. The three kinds take turns
//! (one expiry, one record, one guard, …), [`SWEEP_PARALLELISM`] items at a time, so that
//! no kind waits behind another; each kind's index is read from a first shard that
//! rotates between runs ([`first_shard`]), so that no shard is always read last.

use std::collections::VecDeque;
use std::sync::Mutex;

use futures::stream::{self, StreamExt};

use crate::domain::connector::Connector;
use crate::domain::error::ApiError;
use crate::domain::time::Timestamp;
use crate::ports::{retry_delay_seconds, OutboxRecord, SecretGuard, DUE_SHARDS, GUARD_GRACE_SECONDS};

use super::{Failure, Service};

/// How many due items one sweep reads of each kind; the rest wait for the next run.
pub const SWEEP_BATCH: usize = 500;

/// Items in flight at once. Sweeps are safe side by side (every write is conditional,
/// every secret action bound to its connector), so items of one run are too; a small
/// number keeps Secrets Manager's request rate (its quotas are per account and region,
/// shared with the handlers) and the function's single vCPU share in check.
pub const SWEEP_PARALLELISM: usize = 4;

/// No item starts this close to the run's deadline: twice the SDK's 4 s operation
/// timeout, so an item that started just before has time for two slow calls.
pub const SWEEP_MARGIN_MS: i64 = 8_000;

/// An outbox record still undelivered this long after its event is counted in
/// `undelivered` (the sweeper's metric, which an alarm watches).
pub const UNDELIVERED_ALARM_SECONDS: i64 = 3600;

/// Until when a sweep may start items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepBudget {
    /// The run's deadline, epoch milliseconds (Lambda's `deadline_ms`).
    pub deadline_ms: i64,
}

impl SweepBudget {
    /// A run that must be over at `deadline_ms` (epoch milliseconds).
    pub fn until(deadline_ms: i64) -> Self {
        SweepBudget { deadline_ms }
    }

    /// A run of `seconds` from `now_ms`.
    pub fn seconds_from(now_ms: i64, seconds: i64) -> Self {
        SweepBudget::until(now_ms.saturating_add(seconds.saturating_mul(1000)))
    }

    /// No deadline (the admin CLI, tests): every due item read is attempted.
    pub fn unlimited() -> Self {
        SweepBudget::until(i64::MAX)
    }

    /// Whether an item may still start at `now_ms`.
    pub fn allows_start(&self, now_ms: i64) -> bool {
        now_ms < self.deadline_ms.saturating_sub(SWEEP_MARGIN_MS)
    }
}

/// The shard a run starting at `started` reads first, for every kind: the minute of the
/// hour, mod [`DUE_SHARDS`]. Runs every 5 minutes move it by 5 (coprime with 16), so
/// every shard comes first once in 16 runs; a retry a minute later starts elsewhere.
pub fn first_shard(started: Timestamp) -> u32 {
    started.unix().div_euclid(60).rem_euclid(i64::from(DUE_SHARDS)) as u32
}

/// What one sweep did (logged as one summary line, and published as metrics, per run).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Expired disconnects finalised: `integration.expired`, row deleted, secret gone.
    pub expired: usize,
    /// Index entries that were no longer due when re-read (restored, or raced).
    pub skipped: usize,
    /// Left-behind outbox records delivered.
    pub republished: usize,
    /// Deliveries, expiries or guard checks that failed and wait for a later run (with
    /// back-off).
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
    /// Items started, by kind (each run starts some of every kind that has due items).
    pub expiries_attempted: usize,
    pub outbox_attempted: usize,
    pub guards_attempted: usize,
    /// Due items read but not started because the time budget ran out.
    pub left_for_next_run: usize,
    /// The run stopped starting items before it had tried every due item it read (its
    /// deadline was near), or was cut at its deadline.
    pub budget_exhausted: bool,
    /// Index queries that failed (that kind waits for the next run; the run fails).
    pub query_failures: usize,
    /// The shard every kind's query started from.
    pub first_shard: u32,
}

/// One due item.
enum Work {
    Expiry(Box<Connector>),
    Outbox(OutboxRecord),
    Guard(SecretGuard),
}

/// One from each kind in turn, while any is left.
fn take_turns(kinds: [Vec<Work>; 3]) -> Vec<Work> {
    let mut queues: Vec<VecDeque<Work>> = kinds.into_iter().map(VecDeque::from).collect();
    let mut out = Vec::with_capacity(queues.iter().map(VecDeque::len).sum());
    while queues.iter().any(|q| !q.is_empty()) {
        for queue in &mut queues {
            out.extend(queue.pop_front());
        }
    }
    out
}

impl Service {
    /// The scheduled sweep: finalise disconnects whose window has passed, deliver outbox
    /// records their handlers left behind, and delete secrets whose row is gone, within
    /// `budget`. Safe to run concurrently with itself and with handlers: every write is
    /// conditional and every secret action is bound to its connector.
    pub async fn sweep(&self, budget: SweepBudget) -> Result<SweepReport, ApiError> {
        let progress = Mutex::new(SweepReport::default());
        let done = self.sweep_into(budget, &progress).await;
        let report = progress.into_inner().unwrap_or_else(|e| e.into_inner());
        done.map(|()| report)
    }

    /// [`Service::sweep`], keeping its report in `progress` item by item: a caller that
    /// stops the run (at the invocation's deadline) still has what it did. Every kind is
    /// attempted even if another's query fails; the first such failure is returned at
    /// the end.
    pub async fn sweep_into(&self, budget: SweepBudget, progress: &Mutex<SweepReport>) -> Result<(), ApiError> {
        let now = self.clock.now();
        let shard = first_shard(now);
        let update = |f: &mut dyn FnMut(&mut SweepReport)| f(&mut progress.lock().unwrap_or_else(|e| e.into_inner()));
        update(&mut |r| r.first_shard = shard);
        let (expiries, outbox, guards) = futures::join!(
            self.store.due_expiries(now, SWEEP_BATCH, shard),
            self.store.due_outbox(now, SWEEP_BATCH, shard),
            self.store
                .due_guards(now.plus_seconds(-GUARD_GRACE_SECONDS), SWEEP_BATCH, shard),
        );
        let mut failure = None;
        let mut kind = |due: Result<crate::ports::Due<Work>, crate::ports::StoreError>| match due {
            Ok(due) => {
                update(&mut |r| {
                    r.index_items_read += due.items_read;
                    r.bad_items += due.bad_items;
                });
                due.items
            }
            Err(e) => {
                tracing::error!(failure = %e, "sweep index query failed; that kind waits for the next run");
                update(&mut |r| r.query_failures += 1);
                failure.get_or_insert(ApiError::from(e));
                Vec::new()
            }
        };
        let work = take_turns([
            kind(expiries.map(|d| d.map(|row| Work::Expiry(Box::new(row))))),
            kind(outbox.map(|d| d.map(Work::Outbox))),
            kind(guards.map(|d| d.map(Work::Guard))),
        ]);
        stream::iter(work)
            .map(|item| async move {
                if !budget.allows_start(self.clock.now_ms()) {
                    update(&mut |r| {
                        r.left_for_next_run += 1;
                        r.budget_exhausted = true;
                    });
                    return;
                }
                match item {
                    Work::Expiry(row) => self.sweep_expiry(*row, now, progress).await,
                    Work::Outbox(record) => self.sweep_record(record, progress).await,
                    Work::Guard(guard) => self.sweep_guard(guard, progress).await,
                }
            })
            .buffer_unordered(SWEEP_PARALLELISM)
            .for_each(|()| async {})
            .await;
        let report = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
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
            expiries_attempted = report.expiries_attempted,
            outbox_attempted = report.outbox_attempted,
            guards_attempted = report.guards_attempted,
            left_for_next_run = report.left_for_next_run,
            budget_exhausted = report.budget_exhausted,
            query_failures = report.query_failures,
            first_shard = report.first_shard,
            "sweep finished"
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn note(progress: &Mutex<SweepReport>, f: impl FnOnce(&mut SweepReport)) {
    f(&mut progress.lock().unwrap_or_else(|e| e.into_inner()));
}

impl Service {
    async fn sweep_expiry(&self, candidate: Connector, now: Timestamp, progress: &Mutex<SweepReport>) {
        note(progress, |r| r.expiries_attempted += 1);
        match self.expire(&candidate, now).await {
            Ok(Some(true)) => note(progress, |r| r.expired += 1),
            // Committed; the delivery waits in the outbox (with its own back-off).
            Ok(Some(false)) => note(progress, |r| {
                r.expired += 1;
                r.failed += 1;
            }),
            Ok(None) | Err(Failure::LostRace) => {
                tracing::info!(entity_id = %candidate.entity_id, connector_type = %candidate.connector_type, "skipped: no longer due");
                note(progress, |r| r.skipped += 1);
            }
            Err(Failure::Api(e)) => {
                let at = self.clock.now();
                let overdue = candidate.recoverable_until.map_or(0, |until| until.seconds_until(at));
                let retry_at = at.plus_seconds(retry_delay_seconds(overdue));
                tracing::warn!(entity_id = %candidate.entity_id, connector_type = %candidate.connector_type, code = e.code(), %retry_at, "expiry failed; retried later");
                note(progress, |r| r.failed += 1);
                if let Err(e) = self.store.defer_expiry(&candidate, retry_at).await {
                    tracing::warn!(entity_id = %candidate.entity_id, failure = %e, "expiry back-off not stored; retried next run");
                }
            }
        }
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

    async fn sweep_record(&self, record: OutboxRecord, progress: &Mutex<SweepReport>) {
        note(progress, |r| r.outbox_attempted += 1);
        if matches!(self.deliver(&record).await, Ok(true)) {
            note(progress, |r| r.republished += 1);
            return;
        }
        let now = self.clock.now();
        let undelivered = record.created_at.seconds_until(now) >= UNDELIVERED_ALARM_SECONDS;
        note(progress, |r| {
            r.failed += 1;
            r.undelivered += usize::from(undelivered);
        });
        if undelivered {
            tracing::error!(event_id = %record.event_id, attempts = record.attempts + 1, "outbox record still undelivered");
        }
        self.back_off(&record, now).await;
    }

    /// Pushes a failing record's next attempt back, so that it does not take a share of
    /// every run.
    async fn back_off(&self, record: &OutboxRecord, now: Timestamp) {
        if let Err(e) = self.store.reschedule_outbox(&record.after_failed_attempt(now)).await {
            tracing::warn!(event_id = %record.event_id, failure = %e, "back-off not stored; retried next run");
        }
    }

    async fn sweep_guard(&self, guard: SecretGuard, progress: &Mutex<SweepReport>) {
        note(progress, |r| r.guards_attempted += 1);
        match self.check_guard(&guard).await {
            Ok(true) => note(progress, |r| r.guards_cleared += 1),
            Ok(false) => note(progress, |r| r.orphans_deleted += 1),
            Err(e) => {
                let now = self.clock.now();
                // Overdue since its grace ended (not since its last retry time), so
                // the wait grows with every failure.
                let first_due = guard.created_at.plus_seconds(GUARD_GRACE_SECONDS);
                let retry_at = now.plus_seconds(retry_delay_seconds(first_due.seconds_until(now)));
                tracing::warn!(connector_id = %guard.secret.connector_id, code = e.code(), %retry_at, "guard check failed; retried later");
                note(progress, |r| r.failed += 1);
                let deferred = SecretGuard {
                    retry_at: Some(retry_at),
                    ..guard
                };
                if let Err(e) = self.store.defer_guard(&deferred).await {
                    tracing::warn!(connector_id = %guard.secret.connector_id, failure = %e, "guard back-off not stored; retried next run");
                }
            }
        }
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
