//! The sweeper at scale in simulated time (see `sim::scale`): thousands of due items of
//! every kind under a latency model, with a dependency slowed to 1 s a call or failing
//! every call. Every run attempts every kind, ends with its report (the EMF line) before
//! its deadline, and failing items back off. `--nocapture` prints each run's figures.

use shared::domain::error::Dependency;
use shared::service::SWEEP_BATCH;
use shared::sweeper::SWEEP_SECRET_CALLS_PER_SECOND;
use sim::scale::{describe, Conditions, Latency, Load, Run, ScaleWorld};

/// The template's schedule and timeout.
const PERIOD_SECONDS: i64 = 300;
const TIMEOUT_SECONDS: i64 = 60;

const THOUSANDS: Load = Load {
    expiries: 2_000,
    records: 2_000,
    guards: 2_000,
};

/// Every run: every kind attempted, the report out before the deadline.
fn every_run_attempts_every_kind_and_reports(runs: &[Run], label: &str) {
    for (i, run) in runs.iter().enumerate() {
        let r = &run.report;
        assert!(
            r.expiries_attempted > 0 && r.outbox_attempted > 0 && r.guards_attempted > 0,
            "{label}: run {i} starved a kind: {r:?}"
        );
        assert!(
            run.elapsed_ms <= run.deadline_ms - shared::sweeper::HARD_STOP_MARGIN_MS,
            "{label}: run {i} reported after its hard stop: {} ms",
            run.elapsed_ms
        );
    }
}

/// No simulated second saw more Secrets Manager calls than the sweeper's cap.
fn secret_calls_stay_under_the_cap(world: &ScaleWorld, label: &str) -> usize {
    let per_second = world.hooks.secret_calls_per_second.lock().unwrap();
    let busiest = per_second.values().copied().max().unwrap_or(0);
    assert!(
        busiest <= SWEEP_SECRET_CALLS_PER_SECOND as usize,
        "{label}: {busiest} Secrets Manager calls in one second"
    );
    busiest
}

#[test]
fn nominal_latency_clears_thousands_of_due_items_under_the_secrets_manager_rate_cap() {
    let world = ScaleWorld::new(
        Conditions {
            latency: Latency::NOMINAL,
            failing: vec![],
        },
        THOUSANDS,
    );
    let runs = world.schedule(9, PERIOD_SECONDS, TIMEOUT_SECONDS);
    println!("nominal:\n{}", describe(&runs));
    println!("calls: {:?}", world.hooks.calls.lock().unwrap());
    every_run_attempts_every_kind_and_reports(&runs, "nominal");
    let busiest = secret_calls_stay_under_the_cap(&world, "nominal");
    println!("busiest second: {busiest} Secrets Manager calls");
    // The rate cap, not the batch, bounds a run: each kind still gets a third of it.
    let first = &runs[0].report;
    assert!(first.budget_exhausted && first.failed == 0, "{first:?}");
    for kind in [first.expiries_attempted, first.outbox_attempted, first.guards_attempted] {
        assert!((200..SWEEP_BATCH).contains(&kind), "a third of the run each: {first:?}");
    }
    assert_eq!(world.due(), (0, 0, 0), "9 runs clear 2,000 of each kind");
    let shards: std::collections::BTreeSet<u32> = runs.iter().map(|r| r.report.first_shard).collect();
    assert!(shards.len() > 1, "the first shard rotates between runs");
}

#[test]
fn with_secrets_manager_at_1_s_a_call_and_eventbridge_failing_every_run_still_works_every_kind() {
    let world = ScaleWorld::new(
        Conditions {
            latency: Latency {
                secrets_ms: 1_000,
                ..Latency::NOMINAL
            },
            failing: vec![(Dependency::EventBridge, None)],
        },
        THOUSANDS,
    );
    let runs = world.schedule(6, PERIOD_SECONDS, TIMEOUT_SECONDS);
    println!("secrets manager 1 s, eventbridge failing:\n{}", describe(&runs));
    every_run_attempts_every_kind_and_reports(&runs, "brown-out");
    secret_calls_stay_under_the_cap(&world, "brown-out");
    for run in &runs {
        assert!(run.report.budget_exhausted, "the budget runs out: {:?}", run.report);
        assert!(run.report.left_for_next_run > 0);
    }
    // Expiries commit (their delivery waits in the outbox), guards finish (slowly),
    // records fail and back off.
    let total = |f: fn(&Run) -> usize| runs.iter().map(f).sum::<usize>();
    assert!(total(|r| r.report.expired) > 0 && total(|r| r.report.orphans_deleted) > 0);
    assert_eq!(total(|r| r.report.republished), 0);
}

#[test]
fn failing_items_of_every_kind_back_off_instead_of_costing_every_run() {
    const EACH: usize = 200;
    let world = ScaleWorld::new(
        Conditions {
            latency: Latency::NOMINAL,
            // Expiries fail at their transaction, guards and records at their secret or
            // event: every call, every run.
            failing: vec![
                (Dependency::DynamoDb, Some("TransactWriteItems")),
                (Dependency::SecretsManager, None),
                (Dependency::EventBridge, None),
            ],
        },
        Load {
            expiries: EACH,
            records: EACH,
            guards: EACH,
        },
    );
    // Two hours of the schedule: 24 runs.
    let runs = world.schedule(24, PERIOD_SECONDS, TIMEOUT_SECONDS);
    println!("everything failing:\n{}", describe(&runs));
    let first = &runs[0].report;
    assert_eq!(
        (
            first.expiries_attempted,
            first.outbox_attempted,
            first.guards_attempted,
            first.failed
        ),
        (EACH, EACH, EACH, 3 * EACH),
        "the first run tries every item"
    );
    assert!(!first.budget_exhausted);
    let per_item = |f: fn(&Run) -> usize| runs.iter().map(f).sum::<usize>() as f64 / EACH as f64;
    let attempts = (
        per_item(|r| r.report.expiries_attempted),
        per_item(|r| r.report.outbox_attempted),
        per_item(|r| r.report.guards_attempted),
    );
    println!("attempts per failing item in 24 runs (expiry, record, guard): {attempts:?}");
    for (kind, n) in [("expiry", attempts.0), ("record", attempts.1), ("guard", attempts.2)] {
        assert!(
            (2.0..=8.0).contains(&n),
            "a failing {kind} was attempted {n} times in 24 runs (retried, but backed off)"
        );
    }
    assert_eq!(world.due(), (EACH, EACH, EACH), "nothing dropped: all still waiting");
    let secret_calls = world.hooks.secret_calls.lock().unwrap();
    assert!(
        secret_calls.values().all(|&n| n <= 8),
        "no secret was tried more than 8 times: {:?}",
        secret_calls.values().max()
    );
}
