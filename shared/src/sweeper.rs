//! The scheduled function's entry: take the sweeper's lease, run one sweep, give the lease
//! back; the run's summary is the invocation's result.
//!
//! The lease is taken here and not in [`crate::service::Service::sweep`]: sweeps are safe
//! side by side (every write is conditional), and the simulator runs them so on purpose.
//! What the lease prevents is the schedule's own overlap (a run of up to 60 s, two async
//! retries, a new run every 5 minutes) doing the same work twice at the same moment.

use lambda_http::lambda_runtime::Context;

use crate::domain::error::ApiError;
use crate::domain::time::Timestamp;
use crate::ports::LeaseClaim;
use crate::service::{SweepBudget, SweepReport};
use crate::App;

/// The lease's name (its item is `LEASE#sweeper`).
pub const SWEEPER_LEASE: &str = "sweeper";

/// How long the lease outlives the invocation's deadline: the clocks of two containers,
/// and the moment Lambda actually stops a run, are not exact.
pub const LEASE_MARGIN_SECONDS: i64 = 5;

/// The run's length when the invocation has no deadline (a context built by hand): the
/// template's timeout of the sweeper.
pub const RUN_SECONDS_WITHOUT_DEADLINE: i64 = 60;

/// What the sweeper takes from its invocation.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The Lambda request id (the lease's owner token starts with it, for the logs).
    pub request_id: String,
    /// The invocation's deadline, epoch milliseconds; 0 when there is none.
    pub deadline_ms: u64,
}

impl From<&Context> for Invocation {
    fn from(context: &Context) -> Self {
        Invocation {
            request_id: context.request_id.clone(),
            deadline_ms: context.deadline,
        }
    }
}

impl Invocation {
    /// Until when this run holds the lease: its deadline (rounded up to the second) plus
    /// [`LEASE_MARGIN_SECONDS`], or `now` plus the timeout without a deadline.
    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        let end = match i64::try_from(self.deadline_ms.div_ceil(1000)) {
            Ok(seconds) if seconds > 0 => Timestamp::from_unix(seconds),
            _ => None,
        };
        end.unwrap_or_else(|| now.plus_seconds(RUN_SECONDS_WITHOUT_DEADLINE))
            .plus_seconds(LEASE_MARGIN_SECONDS)
    }
}

/// The invocation's result: the sweep's report (all zeros when skipped), whether this run
/// swept, and why not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SweepSummary {
    #[serde(flatten)]
    pub report: SweepReport,
    /// `false` when another run held the lease: this one did nothing.
    pub swept: bool,
    /// `"lease_held"` when skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<&'static str>,
}

/// The run's own hard stop, this long before the invocation's deadline: a sweep still
/// going then (items slower than [`crate::service::SWEEP_MARGIN_MS`] allowed for) is cut
/// where it stands, as Lambda would cut it, but the run still writes its metrics.
pub const HARD_STOP_MARGIN_MS: i64 = 2_000;

impl Invocation {
    /// The run's deadline, epoch milliseconds: the invocation's, or `now_ms` plus the
    /// template's timeout without one.
    pub fn deadline_ms(&self, now_ms: i64) -> i64 {
        match i64::try_from(self.deadline_ms) {
            Ok(ms) if ms > 0 => ms,
            _ => now_ms + RUN_SECONDS_WITHOUT_DEADLINE * 1000,
        }
    }
}

/// Secrets Manager calls a second the sweeper may make: a fifth of the 50 a second each
/// write action allows per account and region, so that a sweep's burst leaves the rest
/// to the API's handlers (docs/DECISIONS.md, "The sweeper's Secrets Manager rate").
pub const SWEEP_SECRET_CALLS_PER_SECOND: u32 = 10;

/// `app` with its vault held to [`SWEEP_SECRET_CALLS_PER_SECOND`]: what the sweeper
/// function runs on (one run at a time per container: the lease).
pub fn with_secret_rate_cap(mut app: App) -> App {
    let capped = crate::rate_cap::RateCappedVault::new(
        app.service.vault.clone(),
        app.service.clock.clone(),
        SWEEP_SECRET_CALLS_PER_SECOND,
    );
    app.service.vault = std::sync::Arc::new(capped);
    app
}

/// One scheduled run.
///
/// - Lease held by another run: nothing is done and the invocation succeeds (the other run
///   is doing the work), with `swept: false` in the summary, a log line and an EMF line
///   (`lease_skips`).
/// - Lease not takeable because DynamoDB failed (throttled, unavailable, refused): nothing
///   is done and the invocation fails, so the schedule's retries, the on-failure queue and
///   the errors alarm see it (the sweep's own queries would have failed the same way).
/// - The sweep runs within the invocation's deadline: it starts no item within
///   [`crate::service::SWEEP_MARGIN_MS`] of it, and is cut [`HARD_STOP_MARGIN_MS`] before
///   it if still going (`budget_exhausted`).
/// - Every run that swept writes one EMF metrics line (`undelivered_records`,
///   `bad_items`, `budget_exhausted`, …), which the template's alarms watch: after a
///   finished sweep, a cut one, and a failed one (a failed index query), which then
///   fails the invocation; whatever it had done stays done.
///
/// The lease is released whether the sweep succeeded or not (only if still ours); a failed
/// release is only logged, as the lease runs out on its own at the deadline.
pub async fn run(app: &App, invocation: Invocation) -> Result<SweepSummary, lambda_http::Error> {
    let now = app.service.clock.now();
    let now_ms = app.service.clock.now_ms();
    // Unique per run: async retries of one event share the Lambda request id.
    let owner = format!("{}/{}", invocation.request_id, uuid::Uuid::new_v4().simple());
    let until = invocation.lease_until(now);
    let deadline_ms = invocation.deadline_ms(now_ms);
    let namespace = &app.settings.metric_namespace;
    match app.service.store.take_lease(SWEEPER_LEASE, &owner, until, now).await {
        Ok(LeaseClaim::Taken) => {}
        Ok(LeaseClaim::HeldElsewhere) => {
            tracing::info!(
                lease = SWEEPER_LEASE,
                "sweep skipped: another run holds the sweeper's lease"
            );
            println!(
                "{}",
                crate::telemetry::sweep_skipped_metric_line(namespace, chrono::Utc::now().timestamp_millis())
            );
            return Ok(SweepSummary {
                report: SweepReport::default(),
                swept: false,
                skipped_because: Some("lease_held"),
            });
        }
        Err(e) => {
            tracing::error!(failure = %e, "sweep not started: the sweeper's lease could not be taken");
            return Err(lambda_http::Error::from(format!(
                "sweep not started: lease: {}",
                ApiError::from(e).code()
            )));
        }
    }
    let progress = std::sync::Mutex::new(SweepReport::default());
    let hard_stop = (deadline_ms - app.service.clock.now_ms() - HARD_STOP_MARGIN_MS).max(0);
    let swept = tokio::time::timeout(
        std::time::Duration::from_millis(hard_stop as u64),
        app.service.sweep_into(SweepBudget::until(deadline_ms), &progress),
    )
    .await;
    let mut report = progress.into_inner().unwrap_or_else(|e| e.into_inner());
    let swept = match swept {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!("sweep cut at its hard stop, {HARD_STOP_MARGIN_MS} ms before the deadline");
            report.cut();
            Ok(())
        }
    };
    // The metrics first: they must be out even if the release is slow and the run cut.
    println!(
        "{}",
        crate::telemetry::sweep_metric_line(namespace, &report, chrono::Utc::now().timestamp_millis())
    );
    if let Err(e) = app.service.store.release_lease(SWEEPER_LEASE, &owner).await {
        tracing::warn!(failure = %e, "the sweeper's lease was not released; it runs out at {until}");
    }
    swept.map_err(|e| {
        tracing::error!(failure = %e, "sweep failed");
        lambda_http::Error::from(format!("sweep failed: {}", e.code()))
    })?;
    Ok(SweepSummary {
        report,
        swept: true,
        skipped_because: None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Settings;
    use crate::memory::{Memory, NoFaults};
    use crate::ports::{Clock, ConnectorStore, ManualClock};

    fn setup() -> (Memory, Arc<ManualClock>, App) {
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let memory = Memory::new(Arc::new(NoFaults), clock.clone(), "connectors/");
        let app = memory.app(Settings::from_lookup(|_| None));
        (memory, clock, app)
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            deadline_ms: 0,
        }
    }

    #[test]
    fn the_lease_lasts_until_the_deadline_plus_the_margin_or_the_timeout_without_one() {
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let with_deadline = Invocation {
            request_id: "r".into(),
            deadline_ms: 1_767_225_630_001, // 2026-01-01T00:00:30.001Z
        };
        assert_eq!(
            with_deadline.lease_until(now),
            Timestamp::parse("2026-01-01T00:00:36Z").unwrap()
        );
        assert_eq!(
            invocation("r").lease_until(now),
            now.plus_seconds(RUN_SECONDS_WITHOUT_DEADLINE + LEASE_MARGIN_SECONDS)
        );
    }

    #[tokio::test]
    async fn a_run_sweeps_and_gives_the_lease_back() {
        let (memory, _, app) = setup();
        let summary = run(&app, invocation("a")).await.unwrap();
        assert!(summary.swept && summary.skipped_because.is_none());
        assert!(memory.state.lock().unwrap().leases.is_empty(), "released");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            (json["swept"].as_bool(), json["expired"].as_u64()),
            (Some(true), Some(0))
        );
        assert!(json.get("skipped_because").is_none());
    }

    #[tokio::test]
    async fn a_run_while_another_holds_the_lease_does_nothing_and_succeeds() {
        let (memory, clock, app) = setup();
        let until = clock.now().plus_seconds(30);
        let taken = memory.take_lease(SWEEPER_LEASE, "other", until, clock.now()).await;
        assert_eq!(taken.unwrap(), LeaseClaim::Taken);
        let summary = run(&app, invocation("b")).await.unwrap();
        assert_eq!(
            (summary.swept, summary.skipped_because, summary.report),
            (false, Some("lease_held"), SweepReport::default())
        );
        let state = memory.state.lock().unwrap();
        assert_eq!(state.leases[SWEEPER_LEASE].0, "other", "the holder keeps it");
    }

    #[tokio::test]
    async fn a_lease_past_its_end_is_taken_over_and_only_its_owner_releases_it() {
        let (memory, clock, app) = setup();
        let until = clock.now().plus_seconds(30);
        memory
            .take_lease(SWEEPER_LEASE, "dead", until, clock.now())
            .await
            .unwrap();
        clock.advance_seconds(29);
        assert!(!run(&app, invocation("early")).await.unwrap().swept);
        clock.advance_seconds(1);
        assert!(
            run(&app, invocation("late")).await.unwrap().swept,
            "taken over at its end"
        );

        memory
            .take_lease(SWEEPER_LEASE, "mine", until.plus_seconds(60), clock.now())
            .await
            .unwrap();
        memory.release_lease(SWEEPER_LEASE, "not-mine").await.unwrap();
        assert_eq!(
            memory
                .take_lease(SWEEPER_LEASE, "third", until.plus_seconds(90), clock.now())
                .await
                .unwrap(),
            LeaseClaim::HeldElsewhere,
            "another owner's release leaves it held"
        );
        memory.release_lease(SWEEPER_LEASE, "mine").await.unwrap();
        assert_eq!(
            memory
                .take_lease(SWEEPER_LEASE, "third", until.plus_seconds(90), clock.now())
                .await
                .unwrap(),
            LeaseClaim::Taken
        );
    }

    /// Refuses every `PutItem` as unavailable, and counts the sweep's queries.
    #[derive(Default)]
    struct DynamoDown {
        queries: std::sync::atomic::AtomicUsize,
    }

    impl crate::memory::Hooks for DynamoDown {
        fn call(&self, call: crate::memory::Call) -> crate::memory::FaultFuture {
            use crate::domain::error::Dependency;
            use crate::memory::Fault;
            use crate::ports::DependencyError;
            let fault = match call.operation {
                "PutItem" => Fault::Before(DependencyError::Unavailable(Dependency::DynamoDb)),
                "Query" => {
                    self.queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Fault::None
                }
                _ => Fault::None,
            };
            Box::pin(std::future::ready(fault))
        }
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_taken_fails_the_invocation_without_sweeping() {
        let hooks = Arc::new(DynamoDown::default());
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let memory = Memory::new(hooks.clone(), clock, "connectors/");
        let app = memory.app(Settings::from_lookup(|_| None));
        let error = run(&app, invocation("c")).await.unwrap_err();
        assert_eq!(error.to_string(), "sweep not started: lease: service_unavailable");
        assert_eq!(hooks.queries.load(std::sync::atomic::Ordering::SeqCst), 0, "no sweep");
    }

    /// Lets the sweep's index queries through (the in-memory store reads each of the
    /// three kinds in one), then never answers another `Query`: the guard check's read of its connector row
    /// hangs, as a dependency hung past every SDK timeout would.
    #[derive(Default)]
    struct RowReadHangs {
        queries: std::sync::atomic::AtomicU32,
    }

    impl crate::memory::Hooks for RowReadHangs {
        fn call(&self, call: crate::memory::Call) -> crate::memory::FaultFuture {
            let index_queries = 3;
            if call.operation == "Query"
                && self.queries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= index_queries
            {
                Box::pin(std::future::pending())
            } else {
                Box::pin(std::future::ready(crate::memory::Fault::None))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_still_going_at_its_hard_stop_is_cut_there_and_reports() {
        let clock = Arc::new(ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
        let memory = Memory::new(Arc::new(RowReadHangs::default()), clock.clone(), "connectors/");
        let app = memory.app(Settings::from_lookup(|_| None));
        let orphan = crate::ports::SecretRef {
            entity_id: crate::domain::ids::EntityId::new_random(),
            connector_id: crate::domain::ids::ConnectorId::new_random(),
            connector_type: crate::domain::catalog::ConnectorType::parse("stripe").unwrap(),
        };
        let guard = crate::ports::SecretGuard::new(orphan, clock.now().plus_seconds(-3600));
        memory.guard_secret(&guard).await.unwrap();
        let started = tokio::time::Instant::now();
        let deadline_ms = clock.now_ms() + 30_000;
        let summary = run(
            &app,
            Invocation {
                request_id: "cut".into(),
                deadline_ms: deadline_ms as u64,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            started.elapsed(),
            std::time::Duration::from_millis(30_000 - HARD_STOP_MARGIN_MS as u64),
            "cut at the hard stop"
        );
        assert!(summary.swept && summary.report.budget_exhausted, "{summary:?}");
        assert_eq!(
            (
                summary.report.guards_attempted,
                summary.report.orphans_deleted,
                summary.report.left_for_next_run
            ),
            (1, 0, 0)
        );
        assert!(memory.state.lock().unwrap().leases.is_empty(), "released");
        let line: serde_json::Value =
            serde_json::from_str(&crate::telemetry::sweep_metric_line("Connectors", &summary.report, 0)).unwrap();
        assert_eq!(line["budget_exhausted"], 1);
    }
}
