//! A write's `Idempotency-Key` answer, stored by the write's own transaction: once the
//! change has committed, the key's answer is that outcome, even if a step after it (the
//! secret work, the deadline, a crash) keeps this request from answering it.
//!
//! The HTTP layer watches the operation's future with a [`CommitWitness`] holding the
//! request's claim; the service's commit puts the answer into its transaction and notes
//! the commit in the witness (a task-local, so the operations' signatures stay as they
//! are). The witness is shared, so what was noted survives the future being dropped at
//! the deadline. Every request is watched (a request without a key by a witness without
//! a claim), so that one cut at its deadline knows the secret work it owes
//! ([`CommitWitness::owed`]). Outside a watched future (the sweeper) nothing is noted.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::domain::connector::Connector;
use crate::domain::view::project;
use crate::ports::{FollowUp, IdempotencyScope, KeyAnswer, SecretAction, SecretRef};

tokio::task_local! {
    static WITNESS: Arc<Mutex<Watched>>;
}

/// A request's claim on its `Idempotency-Key`.
#[derive(Clone, Debug)]
pub struct KeyClaim {
    pub scope: IdempotencyScope,
    pub key: String,
    pub token: String,
}

#[derive(Default)]
struct Watched {
    claim: Option<KeyClaim>,
    committed: Option<Committed>,
    /// The secret the operation is about to restore or write before its commit.
    touched: Option<SecretRef>,
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

impl Committed {
    /// The answer the operation gives for this commit: what `http::run` builds from the
    /// row it returns (each write returns the row it committed).
    pub fn answer(&self) -> (u16, Option<Value>) {
        match &self.row {
            None => (204, None),
            Some(row) => (
                if self.created { 201 } else { 200 },
                Some(json!({ "data": project(row) })),
            ),
        }
    }
}

/// Collects the commit of the operation it watches, for the claim it holds.
#[derive(Clone, Default)]
pub struct CommitWitness(Arc<Mutex<Watched>>);

impl CommitWitness {
    /// A witness whose commits store their answer under `claim`.
    pub fn for_claim(claim: KeyClaim) -> Self {
        CommitWitness(Arc::new(Mutex::new(Watched {
            claim: Some(claim),
            ..Watched::default()
        })))
    }

    /// Runs `work` with its commits noted here.
    pub fn watch<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        WITNESS.scope(self.0.clone(), work)
    }

    /// The write `work` committed, if it got that far.
    pub fn committed(&self) -> Option<Committed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).committed.clone()
    }

    /// The secret work still owed by a `work` that was cut short: its commit's
    /// follow-up, or, before any commit, making a secret it restored or wrote follow its
    /// row. `None` if it touched no secret.
    pub fn owed(&self) -> Option<FollowUp> {
        let watched = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (&watched.committed, watched.touched) {
            (Some(committed), _) => Some(committed.follow_up),
            (None, Some(secret)) => Some(FollowUp {
                secret,
                action: SecretAction::FollowRow,
            }),
            (None, None) => None,
        }
    }
}

/// The key's answer for `committed`, to store in its transaction; `None` when the
/// request holds no claim.
pub(super) fn key_answer(committed: &Committed) -> Option<KeyAnswer> {
    let claim = WITNESS
        .try_with(|w| w.lock().unwrap_or_else(|e| e.into_inner()).claim.clone())
        .ok()
        .flatten()?;
    let (status, body) = committed.answer();
    Some(KeyAnswer {
        scope: claim.scope,
        key: claim.key,
        token: claim.token,
        status,
        body: body.as_ref().map(Value::to_string).unwrap_or_default(),
        follow_up: Some(committed.follow_up),
    })
}

/// Notes in the watching witness, if any, that the operation is about to restore or
/// write `secret` ahead of its commit.
pub(super) fn touching(secret: SecretRef) {
    let _ = WITNESS.try_with(|w| w.lock().unwrap_or_else(|e| e.into_inner()).touched = Some(secret));
}

/// Notes a commit in the watching witness, if any.
pub(super) fn note(committed: Committed) {
    let _ = WITNESS.try_with(|w| w.lock().unwrap_or_else(|e| e.into_inner()).committed = Some(committed));
}
