//! The clients' record of what they sent and were told, and the invariants checked
//! against it and against the in-memory AWS.
//!
//! 1. An active row with credentials has its secret, not scheduled for deletion, holding
//!    as current (`AWSCURRENT`) the version the row records as current, whose values are
//!    some credentials request's and whose key names are `credentials_masked` (so a
//!    rollback racing a credentials PUT never leaves the two disagreeing).
//! 2. A disconnected row inside its window has its secret scheduled for deletion (so it
//!    restores) with those credentials.
//! 3. A connector past its window or deleted leaves no readable secret once the sweeper
//!    has run; no secret action ever finds another connector's secret under its name.
//! 4. No secret without a row at quiescence.
//! 5. Every committed change's event is published at least once, as committed.
//! 6. An `Idempotency-Key` is never refused as in progress past its lease; a replay
//!    returns the first answer (unless a later request with the key was killed unseen:
//!    a key whose first request committed nothing may run again, see [`answer`]).
//! 7. No answer shows another entity's row, and a test key never sees a live row.
//!    Also: no answer is a 500.
//! 8. Overlapping sweeps never finalise a connector twice.
//! 9. At answer time, for a 2xx that is not a replay, of a request that nothing else
//!    (another request on the connector, a retry, a sweep) overlapped: the secret is in
//!    the state the answer says ([`Promise`]).
//! 10. A revoked key is refused by the container that revoked it from then on, and by
//!     every container once a cache entry's lifetime has passed.
//! 11. A late sync report never changes a newer state: a connector's latest applied
//!     report never moves back in time, and none older than the last health reset counts
//!     after it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use shared::domain::ids::ConnectorId;
use shared::key_cache::KEY_CACHE_SECONDS;
use shared::memory::{Secret, State};
use shared::ports::{SecretRef, IDEMPOTENCY_LEASE_SECONDS};

/// How a credentials request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200, for the connector with this id.
    Accepted(String),
    /// Refused before any effect (validation, auth, not found).
    Rejected,
    /// No answer, or a failure: it may have taken effect.
    Unknown,
}

#[derive(Clone, Debug)]
pub struct Submission {
    pub value: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub answer: Answer,
}

/// (tenant, live key, idempotency key number)
pub type KeyScope = (u8, bool, u8);

#[derive(Default)]
pub struct Model {
    /// Credentials sent, per (tenant, connector type index).
    pub submissions: BTreeMap<(u8, u8), Vec<Submission>>,
    /// The first 2xx answer per idempotency key, and when it was given (a key's record
    /// lives 24 hours; after that the key is new again).
    pub first_answers: BTreeMap<KeyScope, (i64, u16, Value)>,
    /// When requests with each idempotency key started.
    pub key_starts: BTreeMap<KeyScope, Vec<i64>>,
    /// When requests with each idempotency key started that ended without the client
    /// seeing an answer (killed).
    pub key_unseen: BTreeMap<KeyScope, Vec<i64>>,
    /// The last connector id each tenant saw per type.
    pub last_id: BTreeMap<(u8, u8), String>,
    /// The latest applied sync report's `finished_at` seen per connector (invariant 9).
    pub latest_reports: BTreeMap<shared::domain::ids::ConnectorId, shared::domain::time::Timestamp>,
}

impl Model {
    /// The credential values a secret of connector `id` may hold.
    pub fn valid_values(&self, tenant: u8, ty: u8, id: &str) -> Vec<&str> {
        let Some(subs) = self.submissions.get(&(tenant, ty)) else {
            return Vec::new();
        };
        let last = subs
            .iter()
            .filter(|s| s.answer == Answer::Accepted(id.to_string()))
            .max_by_key(|s| s.end_ms);
        subs.iter()
            .filter(|s| s.answer != Answer::Rejected)
            .filter(|s| last.is_none_or(|l| s.end_ms >= l.start_ms))
            .map(|s| s.value.as_str())
            .collect()
    }
}

/// A finished request as its client sees it.
pub struct Seen<'a> {
    pub tenant: u8,
    pub live: bool,
    pub entity: &'a str,
    /// The `Idempotency-Key` of a write (reads ignore the header).
    pub idem: Option<u8>,
    pub started_ms: i64,
    pub now_ms: i64,
    pub status: u16,
    pub replayed: bool,
    pub body: &'a Value,
}

/// Invariants 6 and 7 on one answer.
pub fn answer(model: &mut Model, seen: &Seen<'_>, violations: &mut Vec<String>) {
    if seen.status >= 500 && seen.status != 503 {
        violations.push(format!("status {}: {}", seen.status, seen.body));
    }
    let rows: Vec<&Value> = match &seen.body["data"] {
        Value::Array(rows) => rows.iter().collect(),
        Value::Object(_) => vec![&seen.body["data"]],
        _ => Vec::new(),
    };
    // A credential versions list holds versions, not rows.
    let rows: Vec<&Value> = rows.into_iter().filter(|r| r.get("id").is_some()).collect();
    for row in rows {
        if row["entity_id"] != seen.entity {
            violations.push(format!(
                "7: tenant {} was shown another entity's row {row}",
                seen.tenant
            ));
        }
        if !seen.live && row["mode"] != "sandbox" {
            violations.push(format!("7: a test key of tenant {} saw a live row {row}", seen.tenant));
        }
    }
    let Some(k) = seen.idem else { return };
    let scope = (seen.tenant, seen.live, k);
    const DAY_MS: i64 = 86_400_000;
    if let Some((at, ..)) = model.first_answers.get(&scope) {
        if seen.now_ms - at > DAY_MS {
            model.first_answers.remove(&scope);
        }
    }
    if seen.replayed {
        let first = model
            .first_answers
            .entry(scope)
            .or_insert((seen.now_ms, seen.status, seen.body.clone()));
        // A first answer binds only if its key's record was completed, which the client
        // cannot see: a request that committed nothing and whose bookkeeping failed leaves
        // the key to its lease, and a later request with it may run again (and, killed
        // before it answered, leave its own answer for a replay).
        let rerun_unseen = model
            .key_unseen
            .get(&scope)
            .is_some_and(|starts| starts.iter().any(|&s| s > first.0));
        if (first.1, &first.2) != (seen.status, seen.body) && rerun_unseen {
            *first = (seen.now_ms, seen.status, seen.body.clone());
        } else if (first.1, &first.2) != (seen.status, seen.body) {
            violations.push(format!(
                "6: replay of {scope:?} answered {} {} but the first answer was {} {}",
                seen.status, seen.body, first.1, first.2
            ));
        }
    } else if (200..300).contains(&seen.status) {
        model
            .first_answers
            .entry(scope)
            .or_insert((seen.now_ms, seen.status, seen.body.clone()));
    }
    let in_progress = seen.status == 409
        && seen.body["hint"]
            .as_str()
            .is_some_and(|h| h.contains("still in progress"));
    if in_progress {
        // A request claims its key some time after it starts (other requests run in
        // between), at the latest when it is killed at its deadline: its lease ends at
        // most the lease plus that deadline after its start.
        let lease_ms = IDEMPOTENCY_LEASE_SECONDS * 1000 + crate::world::DEADLINE_MS;
        let blocker = model
            .key_starts
            .get(&scope)
            .into_iter()
            .flatten()
            .any(|&start| start != seen.started_ms && start <= seen.now_ms && seen.now_ms - start <= lease_ms);
        if !blocker {
            violations.push(format!(
                "6: key {scope:?} refused as in progress with no request inside its lease"
            ));
        }
    }
}

/// What a 2xx answer says about the connector's secret (invariant 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Promise {
    /// Connect, re-connect, restore, `PATCH is_active: true`: readable, if the row
    /// claims credentials.
    Readable,
    /// A credentials PUT: readable, holding this value.
    Holds(String),
    /// Disconnect, `PATCH is_active: false`: scheduled for deletion, if there is one.
    Scheduled,
    /// A permanent delete (204): nothing readable.
    Unreadable,
}

/// Invariant 9: the secret of connector `secret` (the answered one; for a 204, the one
/// the request found) as `promise` says, right after the answer.
pub fn at_answer(state: &State, prefix: &str, secret: SecretRef, promise: &Promise, violations: &mut Vec<String>) {
    let name = shared::aws::secrets::secret_name(prefix, &secret);
    let found: Option<&Secret> = state.secrets.get(&name);
    let readable = found.is_some_and(|s| s.deletion_at.is_none());
    let claims = state
        .rows
        .values()
        .find(|r| r.row.id == secret.connector_id)
        .is_some_and(|r| r.row.has_secret());
    let id = secret.connector_id;
    let broken = match promise {
        Promise::Readable if claims && !readable => Some("its row claims credentials but its secret is unreadable"),
        Promise::Holds(_) if !readable => Some("its secret is unreadable"),
        // What a reader gets: the version labelled `AWSCURRENT`.
        Promise::Holds(value)
            if !found
                .and_then(|s| s.holder("AWSCURRENT"))
                .is_some_and(|v| v.value.contains(value.as_str())) =>
        {
            Some("its secret does not hold the credentials this request wrote")
        }
        Promise::Scheduled | Promise::Unreadable if readable => Some("its secret is readable"),
        _ => None,
    };
    if let Some(why) = broken {
        violations.push(format!("9: answered {promise:?} for connector {id}, but {why}"));
    }
}

/// A key revoked during the run.
#[derive(Clone, Debug)]
pub struct Revoked {
    pub key: String,
    pub tenant: u8,
    pub live: bool,
    pub at_ms: i64,
    /// The container whose key store revoked it.
    pub container: usize,
}

/// Invariant 10: a request presenting `revoked`, started at `started_ms` on `container`,
/// answered `status`. The revoking container drops its cache entry at once; any other
/// trusts an entry for less than `KEY_CACHE_SECONDS` from the second its lookup began,
/// which began before the revocation (+1 s for whole seconds).
pub fn revoked_key(revoked: &Revoked, container: usize, started_ms: i64, status: u16, violations: &mut Vec<String>) {
    let everywhere = revoked.at_ms + (KEY_CACHE_SECONDS + 1) * 1000;
    let refused_here = container == revoked.container && started_ms >= revoked.at_ms;
    // 429 and 503: the key's lookup failed; nothing was served.
    if (refused_here || started_ms >= everywhere) && !matches!(status, 401 | 429 | 503) {
        violations.push(format!(
            "10: a key revoked at t={} through container {} answered {status} on container {container} at t={started_ms}",
            revoked.at_ms, revoked.container
        ));
    }
}

/// Invariant 3 (second half) after every step.
pub fn every_step(state: &mut State, violations: &mut Vec<String>) {
    for (meant, found) in std::mem::take(&mut state.foreign_touches) {
        violations.push(format!(
            "3: a secret action for connector {} found connector {}'s secret",
            meant.connector_id, found.connector_id
        ));
    }
}

/// Invariant 9 after every step.
pub fn sync_reports(
    state: &State,
    latest: &mut BTreeMap<shared::domain::ids::ConnectorId, shared::domain::time::Timestamp>,
    violations: &mut Vec<String>,
) {
    for (key, sync) in &state.syncs {
        let Some(at) = sync.latest_finished_at else { continue };
        let seen = latest.entry(sync.connector_id).or_insert(at);
        if at < *seen {
            violations.push(format!(
                "11: connector {}'s latest sync report went back from {seen} to {at}",
                sync.connector_id
            ));
        }
        *seen = (*seen).max(at);
        let Some(row) = state.rows.get(key).map(|r| &r.row) else {
            continue;
        };
        let counted_since_reset = row.id == sync.connector_id && row.sync_epoch == sync.epoch;
        if counted_since_reset && row.sync_reset_at.is_some_and(|reset| at < reset) {
            violations.push(format!(
                "11: connector {} counts a report of {at}, older than its reset at {:?}",
                row.id, row.sync_reset_at
            ));
        }
    }
}

/// Tenant of an entity id, by the entities list.
fn tenant_of(entities: &[String], entity: &str) -> Option<u8> {
    entities.iter().position(|e| e == entity).map(|i| i as u8)
}

/// Invariants 1 and 2's values: an active row's secret has the version the row records
/// current (a disconnected row's has it, to be made current on restore), with the row's
/// key names and the values of a request that sent them. A row recording no
/// version (none does, once written by this service) holds the last accepted values.
fn current_version_is_the_rows(
    row: &shared::domain::connector::Connector,
    secret: &shared::memory::Secret,
    model: &Model,
    tenant: u8,
    ty: u8,
    violations: &mut Vec<String>,
) {
    let current = secret.holder("AWSCURRENT");
    let Some(recorded) = row.current_version_record() else {
        let value = current.map_or("", |v| v.value.as_str());
        let valid = model.valid_values(tenant, ty, &row.id.to_string());
        if !valid.iter().any(|v| value.contains(v)) {
            violations.push(format!(
                "1/2: connector {}'s secret holds credentials no accepted request sent (valid: {valid:?})",
                row.id
            ));
        }
        return;
    };
    // A scheduled secret refuses changes: a disconnected row's version is made current by
    // whatever restores it, so it need only be there.
    let found = match row.is_active {
        true => current.filter(|v| v.id == recorded.secret_version_id),
        false => secret.versions.iter().find(|v| v.id == recorded.secret_version_id),
    };
    let Some(current) = found else {
        violations.push(format!(
            "1/2: connector {}'s secret has {:?} current, its row records {} (active: {})",
            row.id,
            current.map(|v| &v.id),
            recorded.secret_version_id,
            row.is_active
        ));
        return;
    };
    let sent = model
        .submissions
        .get(&(tenant, ty))
        .into_iter()
        .flatten()
        .filter(|s| s.answer != Answer::Rejected)
        .any(|s| current.value.contains(&s.value));
    let names: BTreeSet<String> = serde_json::from_str::<Value>(&current.value)
        .ok()
        .and_then(|v| v["credentials"].as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default();
    if !sent || names != row.credential_keys {
        violations.push(format!(
            "1: connector {}'s current secret version is not a sent value with the row's names {:?}",
            row.id, row.credential_keys
        ));
    }
}

/// Invariants 1, 2 and 3 once the sweeper has run (faults off, grace periods passed).
/// `waiting`: connectors with an item the sweeper backed off (checked only once its
/// retry time has passed).
pub fn settled(
    state: &State,
    model: &Model,
    entities: &[String],
    prefix: &str,
    waiting: &BTreeSet<ConnectorId>,
    violations: &mut Vec<String>,
) {
    let mut owned = BTreeSet::new();
    for stored in state.rows.values() {
        let row = &stored.row;
        owned.insert(row.id);
        if !row.has_secret() || waiting.contains(&row.id) {
            continue;
        }
        let name = shared::aws::secrets::secret_name(prefix, &row.secret_ref());
        let tenant = tenant_of(entities, &row.entity_id.to_string()).expect("a simulated tenant");
        let ty = crate::plan::TYPES
            .iter()
            .position(|t| *t == row.connector_type.as_str())
            .expect("a simulated type") as u8;
        let Some(secret) = state.secrets.get(&name) else {
            violations.push(format!(
                "1/2: connector {} claims credentials but has no secret",
                row.id
            ));
            continue;
        };
        match (row.is_active, secret.deletion_at) {
            (true, Some(_)) => violations.push(format!(
                "1: active connector {} has a secret scheduled for deletion",
                row.id
            )),
            (false, None) => violations.push(format!("2: disconnected connector {} has a readable secret", row.id)),
            _ => {}
        }
        current_version_is_the_rows(row, secret, model, tenant, ty, violations);
    }
    for secret in state.secrets.values() {
        let gone = !owned.contains(&secret.owner.connector_id) && !waiting.contains(&secret.owner.connector_id);
        if gone && secret.deletion_at.is_none() {
            violations.push(format!(
                "3: connector {} is gone but its secret is readable",
                secret.owner.connector_id
            ));
        }
    }
}

/// Invariants 4, 5 and 8 after every deadline has passed and the sweeper has run again.
pub fn quiescent(state: &State, violations: &mut Vec<String>) {
    let mut ended: BTreeMap<_, Vec<&str>> = BTreeMap::new();
    for record in &state.committed {
        if matches!(
            record.detail_type.as_str(),
            "integration.expired" | "integration.deleted"
        ) {
            ended.entry(record.connector_id).or_default().push(&record.detail_type);
        }
    }
    for (connector, ends) in ended {
        if ends.len() > 1 && ends.contains(&"integration.expired") {
            violations.push(format!(
                "8: connector {connector} was finalised more than once: {ends:?}"
            ));
        }
    }
    let owned: BTreeSet<_> = state.rows.values().map(|r| r.row.id).collect();
    for secret in state.secrets.values() {
        if !owned.contains(&secret.owner.connector_id) {
            violations.push(format!(
                "4: a secret of connector {} outlives its row",
                secret.owner.connector_id
            ));
        }
    }
    let published: BTreeMap<&str, &str> = state
        .published
        .iter()
        .map(|r| (r.event_id.as_str(), r.detail.as_str()))
        .collect();
    for record in &state.committed {
        match published.get(record.event_id.as_str()) {
            None => violations.push(format!("5: {} {} never published", record.detail_type, record.event_id)),
            Some(detail) if *detail != record.detail => {
                violations.push(format!("5: {} published unlike its commit", record.event_id))
            }
            _ => {}
        }
    }
}
