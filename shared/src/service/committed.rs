//! What a request's own write committed, for the `Idempotency-Key` bookkeeping: once the
//! transaction has committed, the key's answer is that outcome, even if a step after it
//! (the secret work, the deadline) makes this request answer an error.
//!
//! The HTTP layer watches the operation's future with a [`CommitWitness`]; the service
//! notes each commit in it (a task-local, so the operations' signatures stay as they
//! are). The witness is shared, so what was noted survives the future being dropped at
//! the deadline. Outside a watched future (the sweeper, the simulator's direct calls),
//! noting does nothing.

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::domain::connector::Connector;
use crate::ports::FollowUp;

tokio::task_local! {
    static WITNESS: Arc<Mutex<Option<Committed>>>;
}

/// A write the request committed.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The row as committed (what the operation answers with); `None` when the write
    /// removed it (permanent delete, answered 204).
    pub row: Option<Connector>,
    /// Whether the write created the row (a connect's 201).
    pub created: bool,
    /// The secret work that follows the commit (its outbox record's `secret_action`).
    pub follow_up: FollowUp,
}

/// Collects the commit of the operation it watches.
#[derive(Clone, Default)]
pub struct CommitWitness(Arc<Mutex<Option<Committed>>>);

impl CommitWitness {
    /// Runs `work` with its commits noted here.
    pub fn watch<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        WITNESS.scope(self.0.clone(), work)
    }

    /// The write `work` committed, if it got that far.
    pub fn committed(&self) -> Option<Committed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Notes a commit in the watching witness, if any.
pub(super) fn note(committed: Committed) {
    let _ = WITNESS.try_with(|w| *w.lock().unwrap_or_else(|e| e.into_inner()) = Some(committed));
}
