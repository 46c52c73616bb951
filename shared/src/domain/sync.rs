//! Sync reports and connection health, as pure rules: parsing a worker's report, the
//! stored sync state (an item of its own beside the row), what the row shows of it, and
//! how a report moves it. No I/O here.
//!
//! A credentials change, rollback, restore or re-connect *resets* health. The reset is
//! written on the row only (`sync_epoch` + 1, `sync_reset_at`), never on the sync item, so
//! that such a change never races a report for the same item: a sync state stamped with
//! an older epoch is shown reset (see [`shown`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::connector::Connector;
use super::error::ApiError;
use super::fields::{parse_fields, present, Field};
use super::ids::ConnectorId;
use super::secrets;
use super::time::Timestamp;

/// A `finished_at` up to this far ahead of the service's clock is taken as now (worker
/// clocks drift); further ahead is refused.
pub const FUTURE_TOLERANCE_SECONDS: i64 = 5 * 60;
/// The longest `error.message`, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// The longest `run_id`, in (visible ASCII) characters.
pub const MAX_RUN_ID_LEN: usize = 128;
/// Failures in a row (of codes other than `auth_failed`) from which health is `failing`.
pub const FAILING_STREAK: u32 = 3;
/// How many applied `run_id`s are remembered to refuse a repeat. Workers retry a report
/// soon after sending it; a repeat older than the last applied report is ignored anyway.
pub const REMEMBERED_RUN_IDS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    Succeeded,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncErrorCode {
    AuthFailed,
    RateLimited,
    UpstreamUnavailable,
    InvalidConfig,
    Other,
}

impl SyncErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncErrorCode::AuthFailed => "auth_failed",
            SyncErrorCode::RateLimited => "rate_limited",
            SyncErrorCode::UpstreamUnavailable => "upstream_unavailable",
            SyncErrorCode::InvalidConfig => "invalid_config",
            SyncErrorCode::Other => "other",
        }
    }
}

/// The read-only `health` field of the row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    #[default]
    Unknown,
    Healthy,
    AuthFailed,
    Failing,
    Degraded,
}

impl Health {
    pub const ALL: [Health; 5] = [
        Health::Unknown,
        Health::Healthy,
        Health::AuthFailed,
        Health::Failing,
        Health::Degraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::AuthFailed => "auth_failed",
            Health::Failing => "failing",
            Health::Degraded => "degraded",
        }
    }

    pub fn parse(text: &str) -> Option<Health> {
        Health::ALL.into_iter().find(|h| h.as_str() == text)
    }
}

impl Field for Health {
    const MUST_BE: &'static str = "one of unknown, healthy, auth_failed, failing, degraded";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(Health::parse)
    }
}

impl Field for SyncOutcome {
    const MUST_BE: &'static str = "\"succeeded\" or \"failed\"";
    fn from_json(value: Value) -> Option<Self> {
        serde_json::from_value(value).ok()
    }
}

impl Field for SyncErrorCode {
    const MUST_BE: &'static str = "one of auth_failed, rate_limited, upstream_unavailable, invalid_config, other";
    fn from_json(value: Value) -> Option<Self> {
        serde_json::from_value(value).ok()
    }
}

impl Field for Timestamp {
    const MUST_BE: &'static str = "an RFC 3339 timestamp";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(Timestamp::parse)
    }
}

/// `error.message`: at most [`MAX_MESSAGE_CHARS`] characters (its secrets are redacted
/// when it is stored, never refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message(String);

impl Field for Message {
    const MUST_BE: &'static str = "a string of at most 500 characters";
    fn from_json(value: Value) -> Option<Self> {
        value
            .as_str()
            .filter(|m| m.chars().count() <= MAX_MESSAGE_CHARS)
            .map(|m| Message(m.to_string()))
    }
}

/// `run_id`: 1 to [`MAX_RUN_ID_LEN`] visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId(String);

impl RunId {
    pub fn new(text: &str) -> Option<RunId> {
        let fits = (1..=MAX_RUN_ID_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        fits.then(|| RunId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Field for RunId {
    const MUST_BE: &'static str = "1 to 128 visible ASCII characters";
    fn from_json(value: Value) -> Option<Self> {
        value.as_str().and_then(RunId::new)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    #[serde(default, deserialize_with = "present")]
    outcome: Option<SyncOutcome>,
    #[serde(default, deserialize_with = "present")]
    finished_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    run_id: Option<RunId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorBody {
    #[serde(default, deserialize_with = "present")]
    code: Option<SyncErrorCode>,
    #[serde(default, deserialize_with = "present")]
    message: Option<Message>,
}

/// A worker's report, validated. `finished_at` is never ahead of the clock that parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub outcome: SyncOutcome,
    pub finished_at: Timestamp,
    /// `Some` exactly when the outcome is `failed`.
    pub error: Option<(SyncErrorCode, Option<String>)>,
    pub run_id: Option<RunId>,
}

/// Parses a report body at `now`. Malformed fields and unknown ones are 400; a body that
/// is well-formed but says something impossible (no `outcome`, an `error` that does not
/// match it, a `finished_at` too far ahead, a tenancy field) is 422, as elsewhere.
pub fn parse_report(body: &Value, now: Timestamp) -> Result<SyncReport, ApiError> {
    let Value::Object(object) = body else {
        return Err(ApiError::bad_request("body", "The body must be a JSON object."));
    };
    if object.contains_key("entity_id") {
        return Err(ApiError::unprocessable(
            "entity_id",
            "`entity_id` may not be sent: the entity comes from the API key.",
        ));
    }
    let parsed: ReportBody = parse_fields(object.clone(), &[])?;
    let outcome = parsed
        .outcome
        .ok_or_else(|| ApiError::unprocessable("outcome", "`outcome` is required: \"succeeded\" or \"failed\"."))?;
    let error = parsed.error.map(parse_error).transpose()?;
    let error = match (outcome, error) {
        (SyncOutcome::Failed, Some(error)) => Some(error),
        (SyncOutcome::Failed, None) => {
            return Err(ApiError::unprocessable(
                "error",
                "`error` is required when `outcome` is \"failed\".",
            ))
        }
        (SyncOutcome::Succeeded, Some(_)) => {
            return Err(ApiError::unprocessable(
                "error",
                "`error` may be sent only when `outcome` is \"failed\".",
            ))
        }
        (SyncOutcome::Succeeded, None) => None,
    };
    let finished_at = match parsed.finished_at {
        None => now,
        Some(at) if at > now.plus_seconds(FUTURE_TOLERANCE_SECONDS) => {
            return Err(ApiError::unprocessable(
                "finished_at",
                "`finished_at` is more than 5 minutes in the future.",
            ))
        }
        Some(at) => at.min(now),
    };
    Ok(SyncReport {
        outcome,
        finished_at,
        error,
        run_id: parsed.run_id,
    })
}

/// `error` of a report: its problems are named `error.code` / `error.message`.
fn parse_error(object: Map<String, Value>) -> Result<(SyncErrorCode, Option<String>), ApiError> {
    let nested = |e: ApiError| {
        let param = format!("error.{}", e.param().unwrap_or_default());
        let hint = e.hint();
        if e.status() == 422 {
            ApiError::unprocessable(param, hint)
        } else {
            ApiError::bad_request(param, hint)
        }
    };
    let parsed: ErrorBody = parse_fields(object, &[]).map_err(nested)?;
    let code = parsed
        .code
        .ok_or_else(|| ApiError::unprocessable("error.code", "`error.code` is required."))?;
    Ok((code, parsed.message.map(|m| m.0)))
}

/// The sync state of one connector, stored as an item of its own beside the row. Only a
/// report writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The connector it belongs to: a state left by an earlier connector of the same type
    /// (another id) is ignored.
    pub connector_id: ConnectorId,
    /// The row's `sync_epoch` it was computed under; an older one is shown reset.
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<Timestamp>,
    /// `<code>` or `<code>: <message>`, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_error: Option<String>,
    #[serde(default)]
    pub health: Health,
    /// Failures in a row since the last success or reset.
    #[serde(default)]
    pub failure_streak: u32,
    /// The `finished_at` of the latest applied report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_finished_at: Option<Timestamp>,
    /// The last [`REMEMBERED_RUN_IDS`] applied `run_id`s, oldest first.
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// When what the row shows of it last changed.
    pub updated_at: Timestamp,
    /// Optimistic-concurrency counter of the item (0: not stored yet).
    pub version: u64,
}

/// What the row shows of its sync state: the stored state, reset if the row was reset
/// since (a newer `sync_epoch`), or nothing before the first report.
pub fn shown(row: &Connector) -> Option<SyncState> {
    let state = row.sync.as_ref().filter(|s| s.connector_id == row.id)?;
    if state.epoch == row.sync_epoch {
        return Some(state.clone());
    }
    Some(SyncState {
        epoch: row.sync_epoch,
        sync_error: None,
        health: Health::Unknown,
        failure_streak: 0,
        ..state.clone()
    })
}

/// The health the row shows.
pub fn health(row: &Connector) -> Health {
    shown(row).map_or(Health::Unknown, |s| s.health)
}

/// Resets health on a row a credentials change, rollback, restore or re-connect makes
/// (`next`, from `before`): it takes effect when the row is committed, and `commit`
/// announces `integration.health_changed` if the health shown moves.
pub fn reset_health(before: &Connector, next: &mut Connector, now: Timestamp) {
    next.health_before.get_or_insert(health(before));
    next.sync_epoch = before.sync_epoch + 1;
    next.sync_reset_at = Some(now);
}

/// The sync state after `report` on `row`, or `None` when the report changes nothing: it
/// is older than the latest applied report or than the last reset, its `run_id` was
/// applied already, or it leaves the state as it was. `updated_at` moves only when what
/// the row shows changes.
pub fn apply_report(row: &Connector, report: &SyncReport, now: Timestamp) -> Option<SyncState> {
    let stored = row.sync.as_ref().filter(|s| s.connector_id == row.id);
    let current = shown(row).unwrap_or(SyncState {
        connector_id: row.id,
        epoch: row.sync_epoch,
        sync_status: None,
        last_sync_at: None,
        sync_error: None,
        health: Health::Unknown,
        failure_streak: 0,
        latest_finished_at: None,
        run_ids: Vec::new(),
        updated_at: now,
        version: 0,
    });
    let repeated = report
        .run_id
        .as_ref()
        .is_some_and(|id| current.run_ids.iter().any(|seen| seen == id.as_str()));
    let older = |bound: Option<Timestamp>| bound.is_some_and(|at| report.finished_at < at);
    if repeated || older(current.latest_finished_at) || older(row.sync_reset_at) {
        return None;
    }
    let mut next = current.clone();
    next.sync_status = Some(report.outcome);
    next.latest_finished_at = Some(report.finished_at);
    match &report.error {
        None => {
            next.last_sync_at = Some(report.finished_at);
            next.sync_error = None;
            next.failure_streak = 0;
            next.health = Health::Healthy;
        }
        Some((code, message)) => {
            next.failure_streak = current.failure_streak.saturating_add(1);
            next.sync_error = Some(error_text(*code, message.as_deref()));
            next.health = match code {
                SyncErrorCode::AuthFailed => Health::AuthFailed,
                _ if next.failure_streak >= FAILING_STREAK => Health::Failing,
                _ => Health::Degraded,
            };
        }
    }
    if let Some(id) = &report.run_id {
        next.run_ids.push(id.as_str().to_string());
        let excess = next.run_ids.len().saturating_sub(REMEMBERED_RUN_IDS);
        next.run_ids.drain(..excess);
    }
    let shows = |s: &SyncState| (s.sync_status, s.last_sync_at, s.sync_error.clone(), s.health);
    let shown_changes = stored.is_none() || shows(&next) != shows(&current);
    // A state that differs from the current one only in remembered run ids is not worth
    // a write: repeating that report would change nothing either.
    let without_run_ids = |s: &SyncState| SyncState {
        run_ids: Vec::new(),
        ..s.clone()
    };
    if !shown_changes && without_run_ids(&next) == without_run_ids(&current) && stored.is_some() {
        return None;
    }
    if shown_changes {
        next.updated_at = now;
    }
    // Counted on from whatever item is stored, even one of an earlier connector.
    next.version = row.sync.as_ref().map_or(0, |s| s.version) + 1;
    Some(next)
}

/// `sync_error` as shown: the code, then `": "` and the message if one was sent, with
/// anything that looks like a secret replaced by `[redacted]`.
pub fn error_text(code: SyncErrorCode, message: Option<&str>) -> String {
    match message {
        Some(message) => {
            let visible: String = message.chars().filter(|c| !c.is_control()).collect();
            format!("{}: {}", code.as_str(), secrets::redact(&visible))
        }
        None => code.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{KeyId, Principal, Scope};
    use crate::domain::catalog::ConnectorType;
    use crate::domain::edits::Edits;
    use crate::domain::lifecycle;
    use serde_json::json;

    fn t0() -> Timestamp {
        Timestamp::parse("2026-12-02T12:00:00Z").unwrap()
    }

    fn row() -> Connector {
        let principal = Principal {
            entity_id: crate::domain::ids::EntityId::new_random(),
            key_id: KeyId::parse("key_abcdefghij12").unwrap(),
            livemode: true,
            scopes: Scope::ALL.into(),
        };
        lifecycle::connect(
            &principal,
            ConnectorType::parse("shopify").unwrap(),
            &Edits::default(),
            t0(),
        )
        .unwrap()
    }

    fn report(body: Value, now: Timestamp) -> SyncReport {
        parse_report(&body, now).unwrap()
    }

    /// Applies `body` at `now` and stores the result on the row, as the store would.
    fn applied(row: &mut Connector, body: Value, now: Timestamp) -> bool {
        match apply_report(row, &report(body, now), now) {
            Some(state) => {
                row.sync = Some(state);
                true
            }
            None => false,
        }
    }

    #[test]
    fn bad_bodies_are_400_and_impossible_ones_422_naming_the_field() {
        let now = t0();
        for (body, status, param) in [
            (json!({}), 422, "outcome"),
            (json!({"outcome": "maybe"}), 400, "outcome"),
            (json!({"outcome": "failed"}), 422, "error"),
            (
                json!({"outcome": "succeeded", "error": {"code": "other"}}),
                422,
                "error",
            ),
            (json!({"outcome": "failed", "error": {}}), 422, "error.code"),
            (
                json!({"outcome": "failed", "error": {"code": "nope"}}),
                400,
                "error.code",
            ),
            (
                json!({"outcome": "failed", "error": {"code": "other", "message": "x".repeat(501)}}),
                400,
                "error.message",
            ),
            (
                json!({"outcome": "failed", "error": {"code": "other", "extra": 1}}),
                400,
                "error.extra",
            ),
            (
                json!({"outcome": "succeeded", "finished_at": "yesterday"}),
                400,
                "finished_at",
            ),
            (
                json!({"outcome": "succeeded", "finished_at": "2026-12-02T12:05:01Z"}),
                422,
                "finished_at",
            ),
            (json!({"outcome": "succeeded", "run_id": "has space"}), 400, "run_id"),
            (
                json!({"outcome": "succeeded", "run_id": "r".repeat(129)}),
                400,
                "run_id",
            ),
            (json!({"outcome": "succeeded", "colour": 1}), 400, "colour"),
            (json!({"outcome": "succeeded", "entity_id": "x"}), 422, "entity_id"),
        ] {
            let e = parse_report(&body, now).unwrap_err();
            assert_eq!((e.status(), e.param()), (status, Some(param)), "{body}");
        }
        let ok = report(
            json!({"outcome": "failed", "finished_at": "2026-12-02T12:05:00Z", "run_id": "r".repeat(128),
                   "error": {"code": "rate_limited", "message": "x".repeat(500)}}),
            now,
        );
        assert_eq!(ok.finished_at, now, "up to 5 minutes ahead is taken as now");
        assert_eq!(report(json!({"outcome": "succeeded"}), now).finished_at, now);
    }

    #[test]
    fn health_follows_the_latest_report_and_the_failure_streak() {
        let mut r = row();
        assert_eq!((health(&r), shown(&r)), (Health::Unknown, None));
        let at = |s: i64| t0().plus_seconds(s);
        let fail = |code: &str| json!({"outcome": "failed", "error": {"code": code}});
        assert!(applied(&mut r, fail("rate_limited"), at(1)));
        assert_eq!(health(&r), Health::Degraded);
        assert!(applied(&mut r, fail("auth_failed"), at(2)));
        assert_eq!(health(&r), Health::AuthFailed);
        assert!(applied(&mut r, fail("other"), at(3)));
        assert_eq!(health(&r), Health::Failing, "3 failures in a row, of any code");
        let s = shown(&r).unwrap();
        assert_eq!(
            (s.sync_status, s.last_sync_at, s.sync_error.as_deref()),
            (Some(SyncOutcome::Failed), None, Some("other"))
        );
        assert!(applied(&mut r, json!({"outcome": "succeeded"}), at(4)));
        let s = shown(&r).unwrap();
        assert_eq!(
            (s.health, s.last_sync_at, s.sync_error),
            (Health::Healthy, Some(at(4)), None)
        );
        assert!(applied(&mut r, fail("upstream_unavailable"), at(5)));
        assert_eq!(health(&r), Health::Degraded, "a success ends the streak");
        assert_eq!(
            shown(&r).unwrap().last_sync_at,
            Some(at(4)),
            "the latest success's time stays"
        );
    }

    #[test]
    fn late_and_repeated_reports_change_nothing() {
        let mut r = row();
        let at = |s: i64| t0().plus_seconds(s);
        let body = json!({"outcome": "succeeded", "run_id": "run-1", "finished_at": at(10).to_string()});
        assert!(applied(&mut r, body.clone(), at(20)));
        assert!(!applied(&mut r, body, at(30)), "same run_id");
        let late = json!({"outcome": "failed", "error": {"code": "other"}, "finished_at": at(5).to_string()});
        assert!(!applied(&mut r, late, at(30)), "older than the latest applied");
        let same = json!({"outcome": "succeeded", "finished_at": at(10).to_string()});
        assert!(!applied(&mut r, same, at(40)), "nothing shown changes: no write");
        assert_eq!(shown(&r).unwrap().updated_at, at(20));
    }

    #[test]
    fn a_reset_keeps_status_and_last_sync_and_refuses_older_reports() {
        let mut r = row();
        let at = |s: i64| t0().plus_seconds(s);
        assert!(applied(&mut r, json!({"outcome": "succeeded"}), at(1)));
        assert!(applied(
            &mut r,
            json!({"outcome": "failed", "error": {"code": "auth_failed", "message": "m"}}),
            at(2)
        ));
        let mut next = r.clone();
        reset_health(&r, &mut next, at(10));
        assert_eq!(next.health_before, Some(Health::AuthFailed));
        let s = shown(&next).unwrap();
        assert_eq!(
            (s.health, s.sync_error, s.failure_streak, s.sync_status, s.last_sync_at),
            (Health::Unknown, None, 0, Some(SyncOutcome::Failed), Some(at(1)))
        );
        let before_reset = json!({"outcome": "succeeded", "finished_at": at(9).to_string()});
        assert!(!applied(&mut next, before_reset, at(11)));
        assert!(applied(
            &mut next,
            json!({"outcome": "failed", "error": {"code": "other"}}),
            at(12)
        ));
        assert_eq!(
            (health(&next), shown(&next).unwrap().failure_streak),
            (Health::Degraded, 1)
        );
    }

    #[test]
    fn sync_error_never_shows_a_secret() {
        let text = error_text(
            SyncErrorCode::AuthFailed,
            Some("token shpat_0123456789abcdef0123456789abcdef revoked"),
        );
        assert_eq!(text, "auth_failed: token [redacted] revoked");
        assert_eq!(error_text(SyncErrorCode::Other, None), "other");
    }

    #[test]
    fn a_state_of_an_earlier_connector_is_ignored() {
        let mut r = row();
        assert!(applied(&mut r, json!({"outcome": "succeeded"}), t0()));
        r.id = crate::domain::ids::ConnectorId::new_random();
        assert_eq!(shown(&r), None);
    }
}
