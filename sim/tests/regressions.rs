//! Histories the simulator once failed on, replayed from their seed and shrunk plan, and
//! the simulator's own guarantees (the same seed gives the same run).

use sim::plan::Action;
use sim::{plan_for, run, Defect, Options};

#[test]
fn a_run_is_a_function_of_its_seed_and_plan() {
    let plan = plan_for(7, 300);
    let (a, b) = (run(7, &plan, &Options::default()), run(7, &plan, &Options::default()));
    assert_eq!(a.operations, b.operations);
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.violations, b.violations);
    assert!(a.faults.calls > 0 && a.faults.killed + a.faults.throttled + a.faults.unavailable > 0);
    // Call for call, with the same ids: the connector, event and version ids the service
    // makes come from the seed (`seed_this_thread`), so a failing seed replays exactly.
    let traced = Options {
        trace: true,
        ..Options::default()
    };
    let (a, b) = (run(7, &plan, &traced), run(7, &plan, &traced));
    assert!(
        a.trace
            .iter()
            .any(|line| line.contains("secretsmanager:") && line.contains('[')),
        "the trace names the connector of each secret call"
    );
    let first_difference = a.trace.iter().zip(&b.trace).position(|(x, y)| x != y);
    assert_eq!(
        first_difference.map(|i| (&a.trace[i], &b.trace[i])),
        None,
        "the two runs part at this line"
    );
    assert_eq!(a.trace.len(), b.trace.len());
}

#[test]
fn a_few_seeds_hold_every_invariant() {
    for seed in 100..104 {
        let plan = plan_for(seed, 500);
        // Every planned request and sweep started (clock jumps are not operations).
        let planned = plan.iter().filter(|op| !matches!(op.action, Action::Jump(_))).count() as u64;
        let outcome = run(seed, &plan, &Options::default());
        assert!(
            outcome.operations >= planned,
            "seed {seed} ran {} operations of {planned} planned",
            outcome.operations
        );
        assert!(outcome.violations.is_empty(), "seed {seed}: {:?}", outcome.violations);
    }
}

#[test]
fn sweeps_overlap_each_other_in_the_simulated_runs() {
    // Invariant 8 (no connector finalised twice) is checked over these overlaps.
    let overlapping: u64 = (100..104)
        .map(|seed| run(seed, &plan_for(seed, 500), &Options::default()).overlapping_sweeps)
        .sum();
    assert!(overlapping > 0, "no sweep ever overlapped another");
}

#[test]
fn a_restore_that_leaves_its_secret_scheduled_is_found_at_answer_time() {
    // The planted defect: `commit_reactivation` without the restore before its
    // commit and the `FollowRow` after. Before the answer-time invariant, 200,000
    // operations found nothing: the guard repaired it 15 minutes later.
    let options = Options {
        plant: Some(Defect::RestoreWithoutSecret),
        ..Options::default()
    };
    let outcome = run(1, &plan_for(1, 2_000), &options);
    assert!(
        outcome.violations.iter().any(|v| v.starts_with("9: answered Readable")),
        "{:?}",
        outcome.violations
    );
    assert!(run(1, &plan_for(1, 2_000), &Options::default()).violations.is_empty());
}

#[test]
fn a_credentials_put_never_overwrites_a_connector_connected_after_a_purge() {
    // Seed 122 of the 1,000,000-operation run of 2026-12-02: a credentials PUT read
    // connector A (version 1); a permanent delete removed A and a connect created B
    // (version 1) under the same key; the PUT's commit, conditioned on the version only,
    // replaced B by A claiming credentials whose secret the purge had deleted (1/2: "claims
    // credentials but has no secret"), and B, answered 201, was gone. Writes are now
    // conditioned on the connector's id too.
    let outcome = run(122, &plan_for(122, 2_000), &Options::default());
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}

#[test]
fn a_no_op_whose_answer_was_not_stored_is_not_given() {
    // Seed 130 of the 1,000,000-operation run of 2026-12-02 (after the merge of credential
    // versions, sync reports and the answer-time work): a disconnect of a disconnected
    // connector with an `Idempotency-Key` committed nothing and answered 200, but storing
    // its answer failed; once the lease passed, a retry with the key ran again after a
    // restore and a new disconnect and answered another 200 (6: "replay … but the first
    // answer was …"). Such a success is now a 503: the caller never sees an answer the key
    // does not keep.
    let outcome = run(130, &plan_for(130, 2_000), &Options::default());
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}
