//! The connector lifecycle of docs/DECISIONS.md ("Lifecycle") as pure functions: each takes the current row
//! and the time, and returns the next row (or says nothing changes). No I/O here.
//!
//! ```text
//! none ──POST──▶ active ──DELETE──▶ disconnected ──7 days──▶ expired (gone)
//!                  ▲                     │
//!                  └──── restore ────────┘
//! ```

use super::api_key::Principal;
use super::catalog::ConnectorType;
use super::connector::{Connector, Mode, SecretArn};
use serde_json::Value;

use super::edits::Edits;
use super::event::EventType;
use super::ids::ConnectorId;
use super::sync;
use super::time::Timestamp;
use super::versions::{CredentialVersion, INITIAL_VERSION_ID};

/// How long a disconnected connector (and its secret) can be restored.
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("a test key can only use sandbox connectors")]
    LiveModeWithTestKey,
    #[error("the recovery window has passed")]
    WindowExpired,
}

/// A test key may ask only for sandbox rows (`mode` is what a body asked for, if anything).
pub fn check_mode(principal: &Principal, mode: Option<Mode>) -> Result<(), LifecycleError> {
    if mode.is_some_and(Mode::is_live) && !principal.livemode {
        return Err(LifecycleError::LiveModeWithTestKey);
    }
    Ok(())
}

/// A brand-new active row. Mode defaults to the key's mode.
pub fn connect(
    principal: &Principal,
    connector_type: ConnectorType,
    edits: &Edits,
    now: Timestamp,
) -> Result<Connector, LifecycleError> {
    let default_mode = if principal.livemode { Mode::Live } else { Mode::Sandbox };
    check_mode(principal, edits.mode)?;
    let mode = edits.mode.unwrap_or(default_mode);
    let row = Connector {
        id: ConnectorId::new_random(),
        entity_id: principal.entity_id,
        connector_type,
        display_name: connector_type.entry().display_name.to_string(),
        mode,
        is_active: true,
        config: Default::default(),
        credential_keys: Default::default(),
        has_webhook_secret: false,
        credentials_secret_arn: None,
        credential_versions: Vec::new(),
        current_credential_version: None,
        sync_epoch: 0,
        sync_reset_at: None,
        sync: None,
        health_before: None,
        ship_from_name: None,
        ship_from_address1: None,
        ship_from_city: None,
        ship_from_state: None,
        ship_from_zip: None,
        seller_id: None,
        bank_account_id: None,
        disconnected_at: None,
        recoverable_until: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    Ok(apply_fields(row, edits))
}

/// Copies the sent editable fields (not `is_active`, which is a lifecycle move) onto a row.
/// `Edits` serialises exactly the fields that were sent, under the row's names, so they are
/// laid over the row's own serde form field by field (`null` clears).
pub fn apply_fields(row: Connector, edits: &Edits) -> Connector {
    let (Ok(Value::Object(mut fields)), Ok(Value::Object(sent))) =
        (serde_json::to_value(&row), serde_json::to_value(edits))
    else {
        unreachable!("a row and its edits serialise to JSON objects");
    };
    fields.extend(sent);
    // The test every_edit_lands_on_the_row_field_of_its_name sets every field of `Edits`.
    let edited: Connector =
        serde_json::from_value(Value::Object(fields)).expect("every edit has the type of its row field");
    // What the stored form leaves out rides along unchanged.
    Connector {
        sync: row.sync,
        health_before: row.health_before,
        ..edited
    }
}

fn next_version(mut row: Connector, now: Timestamp) -> Connector {
    row.version += 1;
    row.updated_at = now;
    row
}

/// Disconnect: inactive, the 7-day window starts now. `None` when already disconnected
/// (a repeat DELETE is a no-op).
pub fn disconnect(row: &Connector, now: Timestamp) -> Option<Connector> {
    if !row.is_active {
        return None;
    }
    let mut next = next_version(row.clone(), now);
    next.is_active = false;
    next.disconnected_at = Some(now);
    next.recoverable_until = Some(now.plus_days(RECOVERY_WINDOW_DAYS));
    Some(next)
}

/// Restore (and re-connect): active again with the same `id`, window cleared, health
/// starts over. `None` when already active;
/// an error once the window has passed (the row is then gone for good).
pub fn restore(row: &Connector, now: Timestamp) -> Result<Option<Connector>, LifecycleError> {
    if row.is_active {
        return Ok(None);
    }
    if row.is_expired(now) {
        return Err(LifecycleError::WindowExpired);
    }
    let mut next = next_version(row.clone(), now);
    next.is_active = true;
    next.disconnected_at = None;
    next.recoverable_until = None;
    sync::reset_health(row, &mut next, now);
    Ok(Some(next))
}

/// PATCH: the sent fields, then the move `is_active` asks for (`false` disconnects, `true`
/// restores). Returns the next row and the events it causes, or `None` if nothing changes.
pub fn edit(
    principal: &Principal,
    row: &Connector,
    edits: &Edits,
    now: Timestamp,
) -> Result<Option<(Connector, Vec<EventType>)>, LifecycleError> {
    check_mode(principal, edits.mode)?;
    let fields = apply_fields(row.clone(), edits);
    let fields_changed = fields != *row;
    let mut events = Vec::new();
    if fields_changed {
        events.push(EventType::Updated);
    }
    let moved = match edits.is_active {
        Some(false) => disconnect(&fields, now).map(|next| (next, EventType::Disconnected)),
        Some(true) => restore(&fields, now)?.map(|next| (next, EventType::Restored)),
        None => None,
    };
    let next = match moved {
        Some((next, event)) => {
            events.push(event);
            next
        }
        None if fields_changed => next_version(fields, now),
        None => return Ok(None),
    };
    Ok(Some((next, events)))
}

/// A credentials change: `version` (a PUT's new one, or an earlier one a rollback brings
/// back) becomes current, the row names its keys, and health starts over. The one step
/// both take.
fn change_credentials(row: &Connector, version: &CredentialVersion, now: Timestamp) -> Connector {
    let mut next = next_version(row.clone(), now);
    next.credential_keys = version.credential_keys.clone();
    next.has_webhook_secret = version.has_webhook_secret;
    next.current_credential_version = Some(version.id.clone());
    // Health starts over: the credentials a worker failed with are not these.
    sync::reset_health(row, &mut next, now);
    next
}

/// Why a rollback cannot happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("the connector is disconnected")]
    Inactive,
    #[error("no such credential version")]
    UnknownVersion,
}

/// New credentials were stored as `version` in the secret at `arn`: it is listed first
/// and current. It takes the slot of any version listed in it (whose label it took); that
/// version being current means a rollback moved to it since the slot was chosen, and the
/// write must start over (`None`).
pub fn with_credentials(
    row: &Connector,
    version: CredentialVersion,
    arn: SecretArn,
    now: Timestamp,
) -> Option<Connector> {
    let evicted = row.credential_versions.iter().find(|v| v.slot == version.slot);
    if evicted.is_some_and(|v| row.current_credential_version.as_deref() == Some(v.id.as_str())) {
        return None;
    }
    let mut next = change_credentials(row, &version, now);
    next.credential_versions.retain(|v| v.slot != version.slot);
    next.credential_versions.insert(0, version);
    next.credentials_secret_arn = Some(arn);
    Some(next)
}

/// Rollback: the recorded version `id` becomes current again. `None` when it is current
/// already (a repeat is a no-op).
pub fn roll_back(row: &Connector, id: &str, now: Timestamp) -> Result<Option<Connector>, RollbackError> {
    if !row.is_active {
        return Err(RollbackError::Inactive);
    }
    if row.has_unrecorded_version() && id == INITIAL_VERSION_ID {
        return Ok(None);
    }
    let version = row
        .credential_versions
        .iter()
        .find(|v| v.id == id)
        .ok_or(RollbackError::UnknownVersion)?;
    if row.current_credential_version.as_deref() == Some(id) {
        return Ok(None);
    }
    Ok(Some(change_credentials(row, version, now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{KeyId, Scope};
    use crate::domain::fields::Text;
    use crate::domain::ids::EntityId;

    fn t0() -> Timestamp {
        Timestamp::parse("2026-03-01T12:00:00Z").unwrap()
    }

    fn principal(livemode: bool) -> Principal {
        Principal {
            entity_id: EntityId::new_random(),
            key_id: KeyId::parse("key_abcdefghij12").unwrap(),
            livemode,
            scopes: Scope::ALL.into(),
        }
    }

    fn stripe_row() -> Connector {
        connect(
            &principal(true),
            ConnectorType::parse("stripe").unwrap(),
            &Edits::default(),
            t0(),
        )
        .unwrap()
    }

    #[test]
    fn connect_builds_an_active_row_with_catalog_defaults() {
        let p = principal(false);
        let row = connect(&p, ConnectorType::parse("avatax").unwrap(), &Edits::default(), t0()).unwrap();
        assert!(row.is_active);
        assert_eq!(row.entity_id, p.entity_id);
        assert_eq!(row.mode, Mode::Sandbox);
        assert_eq!(row.display_name, "Avalara AvaTax");
        assert_eq!((row.created_at, row.updated_at, row.version), (t0(), t0(), 1));
        assert!(row.credential_keys.is_empty() && !row.has_secret());
        assert_eq!(stripe_row().mode, Mode::Live);
    }

    #[test]
    fn every_edit_lands_on_the_row_field_of_its_name() {
        use crate::domain::edits::{parse_edits, BodyKind};
        let samples = serde_json::json!({
            "display_name": "Shop", "mode": "sandbox", "is_active": false, "config": {"region": "eu"},
            "ship_from_name": "ACME", "ship_from_address1": "1 Main", "ship_from_city": "Springfield",
            "ship_from_state": "IL", "ship_from_zip": "62701", "seller_id": "S1",
            "bank_account_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"
        });
        let stripe = ConnectorType::parse("stripe").unwrap();
        let patch = |body: Value| parse_edits(stripe, &body, BodyKind::Patch);
        let mut every_field = samples.clone();
        every_field.as_object_mut().unwrap().remove("is_active");
        let full = apply_fields(stripe_row(), &patch(every_field).unwrap());
        for name in crate::domain::fields::names_of::<Edits>() {
            let sample = samples
                .get(name)
                .unwrap_or_else(|| panic!("no sample value for the new field `{name}`"));
            let edits = patch(serde_json::json!({ *name: sample })).unwrap();
            let row = serde_json::to_value(apply_fields(stripe_row(), &edits)).unwrap();
            if *name == "is_active" {
                assert_eq!(row[name], true, "is_active is a lifecycle move, not a field");
            } else {
                assert_eq!(&row[name], sample, "`{name}` was not copied onto the row");
            }
            assert_eq!(
                apply_fields(full.clone(), &edits),
                full,
                "an edit of `{name}` changed another field"
            );
            // A field that may be cleared is cleared by null.
            if let Ok(cleared) = patch(serde_json::json!({ *name: null })) {
                let row = serde_json::to_value(apply_fields(full.clone(), &cleared)).unwrap();
                assert!(row.get(name).is_none_or(Value::is_null), "`{name}` was not cleared");
            }
        }
    }

    #[test]
    fn a_test_key_cannot_connect_a_live_row() {
        let edits = Edits {
            mode: Some(Mode::Live),
            ..Edits::default()
        };
        let r = connect(&principal(false), ConnectorType::parse("stripe").unwrap(), &edits, t0());
        assert_eq!(r.unwrap_err(), LifecycleError::LiveModeWithTestKey);
    }

    #[test]
    fn disconnect_opens_a_seven_day_window_once() {
        let row = stripe_row();
        let later = t0().plus_seconds(90);
        let gone = disconnect(&row, later).unwrap();
        assert!(!gone.is_active);
        assert_eq!(gone.disconnected_at, Some(later));
        assert_eq!(gone.recoverable_until.unwrap().to_string(), "2026-03-08T12:01:30Z");
        assert_eq!((gone.id, gone.version, gone.updated_at), (row.id, 2, later));
        assert_eq!(disconnect(&gone, later.plus_days(1)), None, "repeat is a no-op");
    }

    #[test]
    fn a_disconnected_row_expires_exactly_at_the_end_of_its_window() {
        let row = stripe_row();
        assert!(!row.is_expired(t0().plus_days(365)), "active rows never expire");
        let gone = disconnect(&row, t0()).unwrap();
        let until = gone.recoverable_until.unwrap();
        assert!(!gone.is_expired(until.plus_seconds(-1)));
        assert!(gone.is_expired(until));
        assert!(gone.is_expired(t0().plus_days(8)));
    }

    fn stored(row: &Connector, keys: &[&str], webhook: bool, at: Timestamp) -> Connector {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        let version = CredentialVersion::new(keys, webhook, row.next_version_slot(), at);
        with_credentials(row, version, SecretArn::new("arn:aws:secretsmanager:x".into()), at).unwrap()
    }

    #[test]
    fn credentials_record_names_only_and_bump_the_version() {
        let row = stripe_row();
        let next = stored(&row, &["secret_key", "publishable_key"], true, t0().plus_seconds(5));
        assert_eq!(
            next.credential_keys.iter().collect::<Vec<_>>(),
            ["publishable_key", "secret_key"]
        );
        assert!(next.has_webhook_secret && next.has_secret());
        assert_eq!(next.version, row.version + 1);
        let listed = &next.credential_versions;
        assert_eq!(listed.len(), 1);
        assert_eq!(next.current_credential_version.as_deref(), Some(listed[0].id.as_str()));
        assert_eq!(
            listed[0].id, listed[0].secret_version_id,
            "the id is the secret version's token"
        );
    }

    #[test]
    fn a_rollback_makes_an_earlier_version_current_with_its_names() {
        let first = stored(&stripe_row(), &["secret_key"], false, t0());
        let second = stored(&first, &["secret_key", "publishable_key"], true, t0().plus_seconds(9));
        let old = first.current_credential_version.clone().unwrap();
        let back = roll_back(&second, &old, t0().plus_seconds(20)).unwrap().unwrap();
        assert_eq!(back.current_credential_version.as_deref(), Some(old.as_str()));
        assert_eq!(back.credential_keys, first.credential_keys);
        assert!(!back.has_webhook_secret);
        assert_eq!(back.version, second.version + 1);
        assert_eq!(
            back.credential_versions, second.credential_versions,
            "a rollback makes no version"
        );
        assert_eq!(roll_back(&back, &old, t0()), Ok(None), "already current: no-op");
        assert_eq!(roll_back(&back, "nope", t0()), Err(RollbackError::UnknownVersion));
        let gone = disconnect(&back, t0()).unwrap();
        assert_eq!(roll_back(&gone, &old, t0()), Err(RollbackError::Inactive));
    }

    #[test]
    fn versions_rotate_through_the_slots_and_never_evict_the_current_one() {
        let mut row = stored(&stripe_row(), &["secret_key"], false, t0());
        let first = row.current_credential_version.clone().unwrap();
        for i in 1..crate::domain::versions::LISTED_VERSIONS as i64 {
            row = stored(&row, &["secret_key"], false, t0().plus_seconds(i));
        }
        row = roll_back(&row, &first, t0().plus_seconds(100)).unwrap().unwrap();
        let next = stored(&row, &["secret_key"], true, t0().plus_seconds(101));
        let listed = &next.credential_versions;
        assert_eq!(listed.len(), crate::domain::versions::LISTED_VERSIONS);
        assert!(
            listed.iter().any(|v| v.id == first),
            "the rolled-back-to version stays listed"
        );
        let slots: std::collections::BTreeSet<u8> = listed.iter().map(|v| v.slot).collect();
        assert_eq!(slots.len(), listed.len(), "one slot each");
        // A slot chosen before a rollback moved to its owner: the write starts over.
        let owner_slot = listed.iter().find(|v| v.id == first).unwrap().slot;
        let at_first = roll_back(&next, &first, t0().plus_seconds(102)).unwrap().unwrap();
        let clash = CredentialVersion::new(Default::default(), false, owner_slot, t0());
        assert_eq!(
            with_credentials(&at_first, clash, SecretArn::new("a".into()), t0()),
            None
        );
    }

    #[test]
    fn restore_brings_back_the_same_row_inside_the_window_only() {
        let row = stripe_row();
        assert_eq!(restore(&row, t0()), Ok(None), "active rows need no restore");
        let gone = disconnect(&row, t0()).unwrap();
        let back = restore(&gone, t0().plus_days(6)).unwrap().unwrap();
        assert!(back.is_active);
        assert_eq!(
            (back.id, back.disconnected_at, back.recoverable_until),
            (row.id, None, None)
        );
        assert_eq!(back.version, gone.version + 1);
        assert_eq!(restore(&gone, t0().plus_days(7)), Err(LifecycleError::WindowExpired));
    }

    #[test]
    fn edit_reports_what_changed_and_nothing_when_nothing_did() {
        let p = principal(true);
        let row = stripe_row();
        let same = Edits {
            display_name: Text::new(&row.display_name),
            ..Edits::default()
        };
        assert_eq!(edit(&p, &row, &same, t0()), Ok(None));
        let renamed = Edits {
            display_name: Text::new("Pay"),
            ..Edits::default()
        };
        let (next, events) = edit(&p, &row, &renamed, t0()).unwrap().unwrap();
        assert_eq!((next.display_name.as_str(), next.version), ("Pay", row.version + 1));
        assert_eq!(events, [EventType::Updated]);

        let off = Edits {
            is_active: Some(false),
            seller_id: Some(Text::new("S1")),
            ..Edits::default()
        };
        let (next, events) = edit(&p, &row, &off, t0()).unwrap().unwrap();
        assert!(!next.is_active && next.recoverable_until.is_some());
        assert_eq!(next.version, row.version + 1, "one write, one version");
        assert_eq!(events, [EventType::Updated, EventType::Disconnected]);

        let on = Edits {
            is_active: Some(true),
            ..Edits::default()
        };
        let (back, events) = edit(&p, &next, &on, t0()).unwrap().unwrap();
        assert!(back.is_active);
        assert_eq!(events, [EventType::Restored]);
        assert_eq!(
            edit(&p, &next, &on, t0().plus_days(8)),
            Err(LifecycleError::WindowExpired)
        );

        let test_key = Principal { livemode: false, ..p };
        let live = Edits {
            mode: Some(Mode::Live),
            ..Edits::default()
        };
        assert_eq!(
            edit(&test_key, &row, &live, t0()),
            Err(LifecycleError::LiveModeWithTestKey)
        );
    }

    #[test]
    fn visibility_follows_entity_and_key_mode() {
        let live = principal(true);
        let row = connect(&live, ConnectorType::parse("ups").unwrap(), &Edits::default(), t0()).unwrap();
        assert!(row.is_visible_to(&live));
        let test_key_same_entity = Principal {
            livemode: false,
            ..live.clone()
        };
        assert!(
            !row.is_visible_to(&test_key_same_entity),
            "live row hidden from test keys"
        );
        let other = principal(true);
        assert!(!row.is_visible_to(&other));
        let sandbox = Connector {
            mode: Mode::Sandbox,
            ..row
        };
        assert!(sandbox.is_visible_to(&test_key_same_entity));
    }
}
