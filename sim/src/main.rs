//! `make simulate`: runs seeds until the operation budget is spent and ends with
//! `simulate: <N> operations, <S> seeds, <V> violations`.
//!
//! `SIM_OPERATIONS` (default 1,000,000) is the budget; `SEED` replays one seed (with its
//! trace); `SIM_FIRST_SEED` (default 1) is where a budget run starts; `SIM_PLAN_LENGTH`
//! (default 2,000) is the operations one seed plans. On a violation: the seed, the
//! shrunk plan as Rust (for `sim/tests/regressions.rs`), its trace, and exit status 1.

use std::time::Instant;

use sim::{plan::AsRust, plan_for, run, shrink, FaultCounts, Options};

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

fn main() {
    let options = Options::default();
    let plan_length = env_number("SIM_PLAN_LENGTH", 2_000) as usize;
    let single = std::env::var("SEED").ok().filter(|s| !s.trim().is_empty());
    let budget = env_number("SIM_OPERATIONS", 1_000_000);
    let mut seed = match &single {
        Some(_) => env_number("SEED", 0),
        None => env_number("SIM_FIRST_SEED", 1),
    };
    let started = Instant::now();
    let (mut operations, mut seeds, mut violations, mut overlapping) = (0u64, 0u64, 0u64, 0u64);
    let mut faults = FaultCounts::default();
    loop {
        let outcome = run(seed, &plan_for(seed, plan_length), &options);
        operations += outcome.operations;
        seeds += 1;
        faults.add(&outcome.faults);
        overlapping += outcome.overlapping_sweeps;
        if !outcome.violations.is_empty() {
            violations += outcome.violations.len() as u64;
            report_violation(seed, plan_length, &options);
        }
        if single.is_some() || operations >= budget {
            break;
        }
        seed += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "faults injected: {} throttled, {} unavailable, {} failed after taking effect, {} requests killed, over {} AWS calls; {:.0} operations/s",
        faults.throttled, faults.unavailable, faults.failed_after_effect, faults.killed, faults.calls,
        operations as f64 / seconds
    );
    println!("sweeps started while another ran: {overlapping}");
    println!("simulate: {operations} operations, {seeds} seeds, {violations} violations");
    if violations > 0 {
        std::process::exit(1);
    }
}
