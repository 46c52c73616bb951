//! `make simulate`: runs seeds until the operation budget is spent and ends with
//! `simulate: <N> operations, <S> seeds, <V> violations`.
//!
//! `SIM_OPERATIONS` (default 1,000,000) is the budget; `SEED` replays one seed (with its
//! trace); `SIM_FIRST_SEED` (default 1) is where a budget run starts; `SIM_PLAN_LENGTH`
//! (default 2,000) is the operations one seed plans. On a violation: the seed, the
//! shrunk plan as Rust (for `sim/tests/regressions.rs`), its trace, and exit status 1.
//! `SIM_PLANT=<defect>` plants one of `shared::planted`'s defects in the service for the
//! run; `SIM_PLANT=all` runs the budget once per defect and prints one line each.

use std::time::Instant;

use sim::{plan::AsRust, plan_for, run, shrink, Defect, FaultCounts, Options};

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a number, not {v:?}");
            std::process::exit(2)
        }),
        _ => default,
    }
}

fn report_violation(seed: u64, plan_length: usize, options: &Options) {
    let plan = plan_for(seed, plan_length);
    let shrunk = shrink(seed, &plan, options, 400);
    let traced = run(
        seed,
        &shrunk,
        &Options {
            trace: true,
            ..*options
        },
    );
    println!(
        "--- seed {seed}: {} violation(s) on a plan shrunk from {} to {} operations",
        traced.violations.len(),
        plan.len(),
        shrunk.len()
    );
    for v in &traced.violations {
        println!("violation: {v}");
    }
    println!("plan (seed {seed}):\n{}", AsRust(&shrunk));
    println!("trace:");
    for line in &traced.trace {
        println!("  {line}");
    }
}

/// What a run over the operation budget found.
#[derive(Default)]
struct Summary {
    operations: u64,
    seeds: u64,
    violations: u64,
    /// Seeds with a violation, in order.
    failing_seeds: Vec<u64>,
    first_violation: Option<String>,
    overlapping: u64,
    deadline_cuts: u64,
    answers_checked: u64,
    revoked_key_requests: u64,
    faults: FaultCounts,
}

/// Runs seeds from `seed` until `budget` operations (or one seed, when `single`); with
/// `report`, each failing seed is shrunk and printed.
fn run_budget(
    options: &Options,
    mut seed: u64,
    budget: u64,
    plan_length: usize,
    single: bool,
    report: bool,
) -> Summary {
    let mut summary = Summary::default();
    loop {
        let outcome = run(seed, &plan_for(seed, plan_length), options);
        summary.operations += outcome.operations;
        summary.seeds += 1;
        summary.faults.add(&outcome.faults);
        summary.overlapping += outcome.overlapping_sweeps;
        summary.deadline_cuts += outcome.deadline_cuts;
        summary.answers_checked += outcome.answers_checked;
        summary.revoked_key_requests += outcome.revoked_key_requests;
        if !outcome.violations.is_empty() {
            summary.violations += outcome.violations.len() as u64;
            summary.failing_seeds.push(seed);
            summary
                .first_violation
                .get_or_insert_with(|| outcome.violations[0].clone());
            if report {
                report_violation(seed, plan_length, options);
            }
        }
        if single || summary.operations >= budget {
            return summary;
        }
        seed += 1;
    }
}

/// `SIM_PLANT=all`: every planted defect over the budget, one line each (no shrinking).
fn every_planted_defect(options: &Options, first_seed: u64, budget: u64, plan_length: usize) {
    for defect in Defect::ALL {
        let started = Instant::now();
        let planted = Options {
            plant: Some(defect),
            ..*options
        };
        let s = run_budget(&planted, first_seed, budget, plan_length, false, false);
        match s.failing_seeds.first() {
            Some(first) => println!(
                "planted {}: found, seed {first} first; {} of {} seeds, {} violations, {} operations, {:.0} s; first: {}",
                defect.name(),
                s.failing_seeds.len(),
                s.seeds,
                s.violations,
                s.operations,
                started.elapsed().as_secs_f64(),
                s.first_violation.unwrap_or_default()
            ),
            None => println!(
                "planted {}: NOT found over {} seeds, {} operations, {:.0} s",
                defect.name(),
                s.seeds,
                s.operations,
                started.elapsed().as_secs_f64()
            ),
        }
    }
}

fn main() {
    let mut options = Options::default();
    let plan_length = env_number("SIM_PLAN_LENGTH", 2_000) as usize;
    let single = std::env::var("SEED").ok().filter(|s| !s.trim().is_empty());
    let budget = env_number("SIM_OPERATIONS", 1_000_000);
    let seed = match &single {
        Some(_) => env_number("SEED", 0),
        None => env_number("SIM_FIRST_SEED", 1),
    };
    match std::env::var("SIM_PLANT").unwrap_or_default().trim() {
        "" => {}
        "all" => return every_planted_defect(&options, seed, budget, plan_length),
        name => match Defect::parse(name) {
            Some(defect) => options.plant = Some(defect),
            None => {
                let names: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
                eprintln!("SIM_PLANT must be `all` or one of {}, not {name:?}", names.join(", "));
                std::process::exit(2)
            }
        },
    }
    if let Some(defect) = options.plant {
        println!("planted defect: {}", defect.name());
    }
    let started = Instant::now();
    let s = run_budget(&options, seed, budget, plan_length, single.is_some(), true);
    let seconds = started.elapsed().as_secs_f64();
    let faults = &s.faults;
    println!(
        "faults injected: {} throttled, {} unavailable, {} failed after taking effect, {} requests killed, over {} AWS calls; {:.0} operations/s",
        faults.throttled, faults.unavailable, faults.failed_after_effect, faults.killed, faults.calls,
        s.operations as f64 / seconds
    );
    println!("sweeps started while another ran: {}", s.overlapping);
    println!(
        "answers checked at answer time: {}; requests cut at their deadline: {}; requests with a revoked key: {}",
        s.answers_checked, s.deadline_cuts, s.revoked_key_requests
    );
    println!(
        "simulate: {} operations, {} seeds, {} violations ({:.0} s)",
        s.operations, s.seeds, s.violations, seconds
    );
    if s.violations > 0 {
        std::process::exit(1);
    }
}
