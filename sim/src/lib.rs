//! Deterministic simulation of the connector lifecycle.
//!
//! One seeded, single-threaded world: the real HTTP layer and service over the in-memory
//! ports, in several containers with their own key caches; several tenants with live
//! and test keys sending concurrent requests (with and without `Idempotency-Key`,
//! retrying after failures), some with keys revoked meanwhile; sweeps at random moments,
//! sometimes two at once; a clock that also jumps across the 7-day window and that
//! requests are cut by at their Lambda deadline; every AWS call may be throttled, fail,
//! or take effect and still report a failure; any request may be killed between two
//! calls. `Options::plant` plants one of `shared::planted`'s defects.
//! The invariants of [`check`] are checked after every step and at quiescence. A run is
//! a function of its seed and plan, so any failure replays from them.

pub mod check;
pub mod exec;
pub mod plan;
pub mod scale;
mod world;

pub use exec::{FaultCounts, FaultRates};
pub use plan::{Action, Op};
pub use shared::planted::Defect;
pub use world::run;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What one run of one seed found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Requests and sweeps started (retries included).
    pub operations: u64,
    pub violations: Vec<String>,
    pub faults: FaultCounts,
    /// Sweeps started while another was still running (invariant 8 holds over them).
    pub overlapping_sweeps: u64,
    /// Requests that cut themselves short at their deadline (503 "ran out of time").
    pub deadline_cuts: u64,
    /// 2xx answers checked at answer time (invariant 9), and requests with a revoked key
    /// (invariant 10).
    pub answers_checked: u64,
    pub revoked_key_requests: u64,
    /// What happened, step by step (only when asked for).
    pub trace: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub rates: FaultRates,
    /// Probability that a scheduling step kills the request it picked.
    pub kill_rate: f64,
    /// Keep a trace.
    pub trace: bool,
    /// A defect planted in the service for this run (`SIM_PLANT`).
    pub plant: Option<Defect>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rates: FaultRates {
                throttled: 0.02,
                unavailable: 0.02,
                after_effect: 0.02,
            },
            kill_rate: 0.01,
            trace: false,
            plant: None,
        }
    }
}

/// The plan a seed draws.
pub fn plan_for(seed: u64, operations: usize) -> Vec<Op> {
    plan::generate(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x91a7), operations)
}

/// The shortest plan found (by removing ever smaller runs of operations) on which `seed`
/// still violates an invariant. At most `budget` runs.
pub fn shrink(seed: u64, plan: &[Op], options: &Options, budget: usize) -> Vec<Op> {
    let mut best = plan.to_vec();
    let mut runs = 0;
    let mut chunk = best.len() / 2;
    while chunk >= 1 && runs < budget {
        let mut start = 0;
        let mut removed_any = false;
        while start < best.len() && runs < budget {
            let end = (start + chunk).min(best.len());
            let candidate: Vec<Op> = best[..start].iter().chain(&best[end..]).copied().collect();
            runs += 1;
            if !candidate.is_empty() && !run(seed, &candidate, options).violations.is_empty() {
                best = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if !removed_any {
            chunk /= 2;
        }
    }
    best
}
