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
use crate::planted::{self, Defect};
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

/// What a sweep may spend: until when it may start items, and how many at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepBudget {
    /// The run's deadline, epoch milliseconds (Lambda's `deadline_ms`).
    pub deadline_ms: i64,
    /// Items in flight at once: [`SWEEP_PARALLELISM`] unless told otherwise.
    pub in_flight: usize,
}

impl SweepBudget {
    /// A run that must be over at `deadline_ms` (epoch milliseconds).
    pub fn until(deadline_ms: i64) -> Self {
        SweepBudget {
            deadline_ms,
            in_flight: SWEEP_PARALLELISM,
        }
    }

    /// The same, `n` items at a time (at least one): the emulator's tests, whose moto
    /// serialises transactions and copies the table in each, sweep one at a time.
    pub fn in_flight(self, n: usize) -> Self {
        SweepBudget {
            in_flight: n.max(1),
            ..self
        }
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

impl SweepReport {
    /// The report of a run cut where it stood (at its hard stop): the budget ran out, and
    /// every item read but not started waits for the next run.
    pub fn cut(&mut self) {
        self.budget_exhausted = true;
        let started = self.expiries_attempted + self.outbox_attempted + self.guards_attempted;
        self.left_for_next_run = self.index_items_read.saturating_sub(self.bad_items + started);
    }
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
            .buffer_unordered(budget.in_flight)
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
        if matches!(self.deliver(std::slice::from_ref(&record)).await, Ok(true)) {
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
            None if planted::on(Defect::NoOrphanCleanup) => {}
            None => self.vault.force_delete(&secret).await?,
        }
        self.store.clear_guard(guard).await?;
        Ok(owned)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::config::Settings;
    use crate::domain::api_key::{KeyId, Principal, Scope};
    use crate::domain::catalog::ConnectorType;
    use crate::domain::edits::Edits;
    use crate::domain::error::Dependency;
    use crate::domain::ids::{ConnectorId, EntityId};
    use crate::domain::lifecycle;
    use crate::memory::{Call, Fault, FaultFuture, Hooks, Memory};
    use crate::ports::{Clock, DependencyError, ManualClock, SecretRef};
    use crate::App;

    /// Every call takes a second of the manual clock; calls of `failing` fail while
    /// `failures` is on.
    struct Slow {
        clock: Arc<ManualClock>,
        failing: Vec<(Dependency, Option<&'static str>)>,
        failures: AtomicBool,
    }

    impl Hooks for Slow {
        fn call(&self, call: Call) -> FaultFuture {
            self.clock.advance_seconds(1);
            let fails = self.failures.load(Ordering::SeqCst)
                && self
                    .failing
                    .iter()
                    .any(|(d, op)| *d == call.dependency && op.is_none_or(|o| o == call.operation));
            let fault = if fails {
                Fault::Before(DependencyError::Unavailable(call.dependency))
            } else {
                Fault::None
            };
            Box::pin(std::future::ready(fault))
        }
    }

    fn world(failing: Vec<(Dependency, Option<&'static str>)>) -> (Arc<ManualClock>, Arc<Slow>, App) {
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let hooks = Arc::new(Slow {
            clock: clock.clone(),
            failing,
            failures: AtomicBool::new(false),
        });
        let memory = Memory::new(hooks.clone(), clock.clone(), "t/");
        (clock, hooks, memory.app(Settings::from_lookup(|_| None)))
    }

    /// `n` due items of every kind: expired rows, records past their grace, orphan guards.
    async fn seed(app: &App, clock: &ManualClock, n: usize) {
        let now = clock.now();
        let types: Vec<ConnectorType> = ConnectorType::all().collect();
        for i in 0..n {
            let p = Principal {
                entity_id: EntityId::new_random(),
                key_id: KeyId::parse("key_seed00000000").unwrap(),
                livemode: true,
                scopes: Scope::ALL.into(),
            };
            let t = types[i % types.len()];
            let row = lifecycle::connect(&p, t, &Edits::default(), now.plus_days(-9)).unwrap();
            let mut gone = lifecycle::disconnect(&row, now.plus_days(-8)).unwrap();
            gone.version = row.version + 1;
            app.service.store.save(&gone, None, &[], None).await.unwrap();
            let p = Principal {
                entity_id: EntityId::new_random(),
                ..p
            };
            let live = lifecycle::connect(&p, t, &Edits::default(), now.plus_seconds(-600)).unwrap();
            let event = crate::domain::event::Event::new(
                crate::domain::event::EventType::Connected,
                &live,
                None,
                now.plus_seconds(-600),
            );
            let record = OutboxRecord::new(&event, &live, None);
            app.service.store.save(&live, None, &[record], None).await.unwrap();
            let orphan = SecretRef {
                entity_id: EntityId::new_random(),
                connector_id: ConnectorId::new_random(),
                connector_type: t,
            };
            let guard = SecretGuard::new(orphan, now.plus_seconds(-GUARD_GRACE_SECONDS - 60));
            app.service.store.guard_secret(&guard).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_budget_that_cannot_finish_all_still_attempts_every_kind_in_every_run() {
        let (clock, _, app) = world(vec![]);
        seed(&app, &clock, 30).await;
        let mut remaining = 90;
        for run in 0..3 {
            // 30 s to the deadline, 1 s a call: items start for the first 22 s only.
            let budget = SweepBudget::seconds_from(clock.now_ms(), 30);
            let report = app.service.sweep(budget).await.unwrap();
            assert!(
                report.expiries_attempted > 0 && report.outbox_attempted > 0 && report.guards_attempted > 0,
                "run {run} starved a kind: {report:?}"
            );
            assert!(report.budget_exhausted, "{report:?}");
            let done = report.expired + report.republished + report.orphans_deleted;
            assert_eq!(report.failed, 0);
            assert_eq!(
                report.left_for_next_run + done,
                remaining,
                "every item read was done or left for the next run: {report:?}"
            );
            assert!(clock.now_ms() <= budget.deadline_ms, "the run ended by its deadline");
            remaining -= done;
            clock.advance_seconds(300);
        }
        assert!(remaining < 90);
    }

    #[tokio::test]
    async fn no_item_starts_inside_the_margin_and_the_report_says_so() {
        let (clock, _, app) = world(vec![]);
        seed(&app, &clock, 2).await;
        let budget = SweepBudget::seconds_from(clock.now_ms(), SWEEP_MARGIN_MS / 1000);
        let report = app.service.sweep(budget).await.unwrap();
        assert_eq!(
            (
                report.expiries_attempted + report.outbox_attempted + report.guards_attempted,
                report.left_for_next_run
            ),
            (0, 6)
        );
        assert!(report.budget_exhausted);
        let unlimited = app.service.sweep(SweepBudget::unlimited()).await.unwrap();
        assert_eq!(
            (unlimited.expired, unlimited.republished, unlimited.orphans_deleted),
            (2, 2, 2)
        );
        assert!(!unlimited.budget_exhausted && unlimited.left_for_next_run == 0);
    }

    #[test]
    fn the_first_shard_rotates_through_every_shard_on_a_five_minute_schedule() {
        let start = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let shards: std::collections::BTreeSet<u32> = (0..DUE_SHARDS as i64)
            .map(|run| first_shard(start.plus_seconds(run * 300)))
            .collect();
        assert_eq!(shards.len(), DUE_SHARDS as usize);
        assert_ne!(
            first_shard(start),
            first_shard(start.plus_seconds(60)),
            "a retry a minute later"
        );
    }

    #[tokio::test]
    async fn failing_expiries_and_guards_back_off_and_are_retried() {
        let (clock, hooks, app) = world(vec![
            (Dependency::DynamoDb, Some("TransactWriteItems")),
            (Dependency::SecretsManager, None),
        ]);
        seed(&app, &clock, 1).await;
        hooks.failures.store(true, Ordering::SeqCst);
        let first = app.service.sweep(SweepBudget::unlimited()).await.unwrap();
        assert_eq!(
            (first.expiries_attempted, first.guards_attempted, first.failed),
            (1, 1, 2),
            "{first:?}"
        );
        // The next scheduled run: both are still backed off (the expiry by an hour, as it
        // has been overdue for a day; the guard by 2 minutes and more).
        clock.advance_seconds(60);
        let next = app.service.sweep(SweepBudget::unlimited()).await.unwrap();
        assert_eq!((next.expiries_attempted, next.guards_attempted), (0, 0), "{next:?}");
        hooks.failures.store(false, Ordering::SeqCst);
        clock.advance_seconds(3600);
        let later = app.service.sweep(SweepBudget::unlimited()).await.unwrap();
        assert_eq!(
            (later.expired, later.orphans_deleted, later.failed),
            (1, 1, 0),
            "{later:?}"
        );
    }

    /// Fails every index query of one kind (outbox records' `Query` is the second).
    struct OneQueryDown(std::sync::atomic::AtomicUsize);

    impl Hooks for OneQueryDown {
        fn call(&self, call: Call) -> FaultFuture {
            let fault = if call.operation == "Query" && self.0.fetch_add(1, Ordering::SeqCst) == 1 {
                Fault::Before(DependencyError::Unavailable(Dependency::DynamoDb))
            } else {
                Fault::None
            };
            Box::pin(std::future::ready(fault))
        }
    }

    #[tokio::test]
    async fn a_failed_index_query_leaves_the_other_kinds_swept_and_fails_the_run_after() {
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let memory = Memory::new(
            Arc::new(OneQueryDown(std::sync::atomic::AtomicUsize::new(0))),
            clock.clone(),
            "t/",
        );
        let app = memory.app(Settings::from_lookup(|_| None));
        seed(&app, &clock, 2).await;
        let progress = Mutex::new(SweepReport::default());
        let outcome = app.service.sweep_into(SweepBudget::unlimited(), &progress).await;
        assert_eq!(outcome.unwrap_err().code(), "service_unavailable");
        let report = progress.into_inner().unwrap();
        assert_eq!(report.query_failures, 1);
        assert_eq!(
            (report.expired, report.orphans_deleted, report.outbox_attempted),
            (2, 2, 0),
            "{report:?}"
        );
    }
}
