//! The ports' contracts, run against the in-memory ports (what the simulator uses) and
//! against the AWS adapters on the emulator: the same checks on both, so that the fakes
//! cannot drift from what the service gets from AWS.
//!
//! Not checkable on the emulator, so taken from AWS's documentation and only in the
//! in-memory ports: TTL deleting items up to ~48 h late, a force-deleted secret's name
//! being refused for a while, and `ClientRequestToken` replay of a transaction.

use crate::support;

use std::sync::Arc;

use shared::aws::idempotency::DynamoIdempotencyStore;
use shared::aws::keys::DynamoKeyStore;
use shared::aws::secrets::{secret_name, SecretsManagerVault};
use shared::aws::store::DynamoConnectorStore;
use shared::domain::api_key::{generate_key, ApiKeyRecord, Principal, Scope};
use shared::domain::catalog::ConnectorType;
use shared::domain::connector::Connector;
use shared::domain::credentials::{self, SecretPayload};
use shared::domain::edits::Edits;
use shared::domain::event::{Event, EventType};
use shared::domain::ids::{ConnectorId, EntityId};
use shared::domain::lifecycle;
use shared::domain::time::Timestamp;
use shared::memory::{Memory, NoFaults};
use shared::ports::{
    Clock, ConnectorStore, FollowUp, HeldClaim, IdempotencyClaim, IdempotencyScope, IdempotencyStore, KeyAnswer,
    KeyStore, LeaseClaim, ManualClock, OutboxRecord, SecretAction, SecretError, SecretGuard, SecretRef, StoreError,
    Vault, GUARD_GRACE_SECONDS, IDEMPOTENCY_LEASE_SECONDS,
};
use shared::service::first_shard;
use support::Harness;

/// A secret as a reader sees it: its value if readable, and whether it is scheduled.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Absent,
    Active(String),
    Scheduled,
}

/// Reads a secret's state from outside the port under test.
type Inspector =
    Box<dyn Fn(SecretRef) -> std::pin::Pin<Box<dyn std::future::Future<Output = Seen> + Send>> + Send + Sync>;

/// The ports under test, and a way to look at secrets from outside.
struct Ports {
    store: Arc<dyn ConnectorStore>,
    keys: Arc<dyn KeyStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    vault: Arc<dyn Vault>,
    inspect: Inspector,
    clock: Arc<ManualClock>,
    _harness: Option<Harness>,
}

fn memory() -> Ports {
    let clock = Arc::new(ManualClock::new(Timestamp::from_datetime(chrono::Utc::now())));
    let memory = Arc::new(Memory::new(Arc::new(NoFaults), clock.clone(), "contract/"));
    let state = memory.state.clone();
    Ports {
        store: memory.clone(),
        keys: memory.clone(),
        idempotency: memory.clone(),
        vault: memory,
        inspect: Box::new(move |secret| {
            let name = secret_name("contract/", &secret);
            let seen = match state.lock().unwrap().secrets.get(&name) {
                None => Seen::Absent,
                Some(s) if s.deletion_at.is_some() => Seen::Scheduled,
                Some(s) => Seen::Active(s.current_value().unwrap_or_default().to_string()),
            };
            Box::pin(std::future::ready(seen))
        }),
        clock,
        _harness: None,
    }
}

async fn emulator() -> Ports {
    let h = Harness::new().await;
    // The harness's own (operator) credentials: these checks are about semantics; the
    // functions' grants are checked by every other suite.
    let admin = support::admin_sdk().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&admin);
    let secrets = aws_sdk_secretsmanager::Client::new(&admin);
    let prefix = h.settings.secret_prefix.clone();
    let reader = secrets.clone();
    Ports {
        store: Arc::new(DynamoConnectorStore::new(dynamo.clone(), &h.settings.table)),
        keys: Arc::new(DynamoKeyStore::new(dynamo.clone(), &h.settings.table)),
        idempotency: Arc::new(DynamoIdempotencyStore::new(dynamo, &h.settings.table)),
        vault: Arc::new(SecretsManagerVault::new(secrets, &prefix)),
        inspect: Box::new(move |secret| {
            let (client, name) = (reader.clone(), secret_name(&prefix, &secret));
            Box::pin(async move {
                match client.describe_secret().secret_id(&name).send().await {
                    Err(_) => Seen::Absent,
                    Ok(d) if d.deleted_date().is_some() => Seen::Scheduled,
                    Ok(_) => {
                        // What readers ask for: the emulator answers a plain read with the
                        // version current before a stage move (see the versions contract).
                        let value = client
                            .get_secret_value()
                            .secret_id(&name)
                            .version_stage("AWSCURRENT")
                            .send()
                            .await
                            .unwrap();
                        Seen::Active(value.secret_string().unwrap().to_string())
                    }
                }
            })
        }),
        clock: h.clock.clone(),
        _harness: Some(h),
    }
}

fn principal(entity: EntityId) -> Principal {
    Principal {
        entity_id: entity,
        key_id: generate_key(false).key_id,
        livemode: false,
        scopes: Scope::ALL.iter().copied().collect(),
    }
}

fn new_row(now: Timestamp) -> Connector {
    let stripe = ConnectorType::parse("stripe").unwrap();
    lifecycle::connect(&principal(EntityId::new_random()), stripe, &Edits::default(), now).unwrap()
}

fn record(row: &Connector, now: Timestamp) -> OutboxRecord {
    let event = Event::new(EventType::Updated, row, None, now);
    OutboxRecord::new(&event, row, Some(SecretAction::FollowRow))
}

fn payload(value: &str) -> SecretPayload {
    let stripe = ConnectorType::parse("stripe").unwrap();
    credentials::validate(stripe, &serde_json::json!({ "secret_key": value }), None).unwrap()
}

/// Conditional writes on `version`; a failed transaction writes none of its records.
async fn rows_are_written_only_at_their_expected_version(p: Ports) {
    let now = p.clock.now();
    let row = new_row(now);
    p.store.save(&row, None, &[], None).await.unwrap();
    assert_eq!(
        p.store.save(&row, None, &[], None).await,
        Err(StoreError::ConditionFailed)
    );
    let mut next = row.clone();
    next.display_name = "renamed".into();
    next.version = row.version + 1;
    let lost = record(&next, now);
    assert_eq!(
        p.store
            .save(&next, Some(row.version + 7), std::slice::from_ref(&lost), None)
            .await,
        Err(StoreError::ConditionFailed)
    );
    p.clock.advance_seconds(3600);
    let due = p.store.due_outbox(p.clock.now(), 100, 0).await.unwrap();
    assert!(due.items.iter().all(|r| r.event_id != lost.event_id), "all or nothing");
    let kept = record(&next, now);
    p.store
        .save(&next, Some(row.version), std::slice::from_ref(&kept), None)
        .await
        .unwrap();
    assert_eq!(
        p.store.get(row.entity_id, row.connector_type).await.unwrap(),
        Some(next.clone())
    );
    assert_eq!(p.store.list(row.entity_id).await.unwrap(), vec![next.clone()]);
    // Clearing checks the row's version in the same call.
    assert!(!p.store.clear_outbox_if_unchanged(&kept.event_id, &row).await.unwrap());
    assert!(p.store.clear_outbox_if_unchanged(&kept.event_id, &next).await.unwrap());
    assert_eq!(p.store.delete(&row, &[], None).await, Err(StoreError::ConditionFailed));
    p.store.delete(&next, &[], None).await.unwrap();
    assert_eq!(p.store.get(row.entity_id, row.connector_type).await.unwrap(), None);
    // A new connector of the same type starts at the same version: a late write or
    // delete of the old one (same version, other id) must not land on it.
    let newer = lifecycle::connect(&principal(row.entity_id), row.connector_type, &Edits::default(), now).unwrap();
    p.store.save(&newer, None, &[], None).await.unwrap();
    let mut stale = row.clone();
    stale.version = newer.version + 1;
    assert_eq!(
        p.store.save(&stale, Some(newer.version), &[], None).await,
        Err(StoreError::ConditionFailed)
    );
    let stale_at = Connector {
        version: newer.version,
        ..row.clone()
    };
    assert_eq!(
        p.store.delete(&stale_at, &[], None).await,
        Err(StoreError::ConditionFailed)
    );
    assert!(!p
        .store
        .clear_outbox_if_unchanged(&kept.event_id, &stale_at)
        .await
        .unwrap());
    assert_eq!(
        p.store.get(row.entity_id, row.connector_type).await.unwrap(),
        Some(newer)
    );
}

/// A sync state is written beside its row, read with it, only at its expected version
/// and only while the row is the same connector, active and not reset since it was read;
/// deleting the row deletes it.
async fn sync_states_are_written_only_beside_the_row_they_were_read_with(p: Ports) {
    use shared::domain::sync::{self, Health};
    let now = p.clock.now();
    let row = new_row(now);
    p.store.save(&row, None, &[], None).await.unwrap();
    let report = sync::parse_report(
        &serde_json::json!({"outcome": "failed", "error": {"code": "auth_failed"}}),
        now,
    )
    .unwrap();
    let first = sync::apply_report(&row, &report, now).unwrap();
    let announced = record(&row, now);
    p.store
        .save_sync(&row, &first, std::slice::from_ref(&announced), None)
        .await
        .unwrap();
    let read = p.store.get(row.entity_id, row.connector_type).await.unwrap().unwrap();
    assert_eq!(
        (read.sync.as_ref(), read.version),
        (Some(&first), row.version),
        "the row itself unchanged"
    );
    assert_eq!(p.store.list(row.entity_id).await.unwrap(), vec![read.clone()]);
    assert_eq!(sync::health(&read), Health::AuthFailed);
    // Written at the version read only.
    assert_eq!(
        p.store.save_sync(&row, &first, &[], None).await,
        Err(StoreError::ConditionFailed),
        "a state read before another report's"
    );
    // Not once the row was reset (a credentials change) since it was read.
    let mut reset = read.clone();
    sync::reset_health(&read, &mut reset, now);
    reset.version = read.version + 1;
    p.store.save(&reset, Some(read.version), &[], None).await.unwrap();
    let second = sync::apply_report(&read, &report, now).unwrap();
    assert_eq!(
        p.store.save_sync(&read, &second, &[], None).await,
        Err(StoreError::ConditionFailed),
        "a report read before the reset"
    );
    let after_reset = p.store.get(row.entity_id, row.connector_type).await.unwrap().unwrap();
    assert_eq!(sync::health(&after_reset), Health::Unknown, "shown reset");
    // Nor once the row was disconnected.
    let mut gone = lifecycle::disconnect(&after_reset, now).unwrap();
    gone.version = after_reset.version + 1;
    p.store.save(&gone, Some(after_reset.version), &[], None).await.unwrap();
    let third = sync::apply_report(&after_reset, &report, now).unwrap();
    assert_eq!(
        p.store.save_sync(&after_reset, &third, &[], None).await,
        Err(StoreError::ConditionFailed),
        "a report for a disconnected row"
    );
    // Deleted with its row.
    p.store.delete(&gone, &[], None).await.unwrap();
    p.store.save(&row, None, &[], None).await.unwrap();
    let again = p.store.get(row.entity_id, row.connector_type).await.unwrap().unwrap();
    assert_eq!(again.sync, None, "the state went with the row");
}

/// The sparse `due` index: expiries when their window has ended, outbox records from
/// their next attempt on, guards from their creation on.
async fn the_due_index_finds_what_is_due_and_nothing_else(p: Ports) {
    let now = p.clock.now();
    let row = new_row(now);
    p.store.save(&row, None, &[], None).await.unwrap();
    let mut gone = lifecycle::disconnect(&row, now).unwrap();
    gone.version = row.version + 1;
    let pending = record(&gone, now);
    p.store
        .save(&gone, Some(row.version), std::slice::from_ref(&pending), None)
        .await
        .unwrap();
    let expiries = |at: Timestamp| {
        let store = p.store.clone();
        async move {
            store
                .due_expiries(at, 100, first_shard(at))
                .await
                .unwrap()
                .items
                .iter()
                .any(|r| r.id == row.id)
        }
    };
    assert!(!expiries(now.plus_days(6)).await);
    assert!(expiries(now.plus_days(7)).await);
    // A failed expiry is backed off: not due again before its retry time. A stale
    // version defers nothing, and the row's fields never change.
    let due = now.plus_days(7);
    p.store.defer_expiry(&gone, due.plus_seconds(600)).await.unwrap();
    assert!(!expiries(due.plus_seconds(599)).await, "deferred");
    assert!(expiries(due.plus_seconds(600)).await);
    let stale = Connector {
        version: gone.version + 5,
        ..gone.clone()
    };
    p.store.defer_expiry(&stale, due.plus_days(30)).await.unwrap();
    assert!(expiries(due.plus_seconds(600)).await, "a stale version defers nothing");
    assert_eq!(
        p.store.get(row.entity_id, row.connector_type).await.unwrap(),
        Some(gone.clone())
    );
    let outbox = |at: Timestamp| {
        let store = p.store.clone();
        let id = pending.event_id.clone();
        async move {
            store
                .due_outbox(at, 100, first_shard(at))
                .await
                .unwrap()
                .items
                .iter()
                .any(|r| r.event_id == id)
        }
    };
    assert!(!outbox(now).await, "within its grace period");
    assert!(outbox(pending.next_attempt_at).await);
    let later = pending.after_failed_attempt(pending.next_attempt_at);
    p.store.reschedule_outbox(&later).await.unwrap();
    assert!(!outbox(pending.next_attempt_at).await, "backed off");
    assert!(outbox(later.next_attempt_at).await);
    p.store.clear_outbox(&pending.event_id).await.unwrap();
    assert!(!outbox(later.next_attempt_at).await);

    let guard = SecretGuard::new(row.secret_ref(), now);
    p.store.guard_secret(&guard).await.unwrap();
    let guarded = |before: Timestamp| {
        let store = p.store.clone();
        async move { store.due_guards(before, 100, first_shard(before)).await.unwrap().items }
    };
    assert_eq!(guarded(now).await, vec![guard]);
    assert!(guarded(now.plus_seconds(-1)).await.is_empty());
    // A failed check is backed off: keyed `GUARD_GRACE_SECONDS` before its retry time.
    let deferred = SecretGuard {
        retry_at: Some(now.plus_seconds(GUARD_GRACE_SECONDS + 600)),
        ..guard
    };
    p.store.defer_guard(&deferred).await.unwrap();
    assert!(guarded(now.plus_seconds(599)).await.is_empty(), "deferred");
    assert_eq!(guarded(now.plus_seconds(600)).await, vec![deferred]);
    let renewed = SecretGuard::new(row.secret_ref(), now.plus_seconds(5));
    p.store.guard_secret(&renewed).await.unwrap();
    let late = SecretGuard {
        retry_at: Some(now.plus_days(1)),
        ..guard
    };
    p.store.defer_guard(&late).await.unwrap();
    assert_eq!(
        guarded(now.plus_seconds(5)).await,
        vec![renewed],
        "a renewal is not deferred by the guard it replaced"
    );
    p.store.clear_guard(&guard).await.unwrap();
    assert_eq!(
        guarded(now.plus_seconds(5)).await,
        vec![renewed],
        "a renewed guard is kept"
    );
    p.store.clear_guard(&renewed).await.unwrap();
    assert!(guarded(now.plus_seconds(5)).await.is_empty());
}

/// Claims per entity and mode, with a lease; answers kept for the claim's owner only.
async fn idempotency_claims_hold_for_their_lease_and_their_mode(p: Ports) {
    let now = p.clock.now();
    let test = IdempotencyScope {
        entity_id: EntityId::new_random(),
        livemode: false,
    };
    let live = IdempotencyScope { livemode: true, ..test };
    let IdempotencyClaim::Claimed { token: first } = p.idempotency.claim(test, "k", "fp", now).await.unwrap() else {
        panic!("a new key is claimed");
    };
    assert_eq!(
        p.idempotency.claim(test, "k", "fp", now).await.unwrap(),
        IdempotencyClaim::InProgress
    );
    assert_eq!(
        p.idempotency.claim(test, "k", "other", now).await.unwrap(),
        IdempotencyClaim::Mismatch
    );
    assert!(matches!(
        p.idempotency.claim(live, "k", "fp", now).await.unwrap(),
        IdempotencyClaim::Claimed { .. }
    ));
    let after_lease = now.plus_seconds(IDEMPOTENCY_LEASE_SECONDS);
    assert_eq!(
        p.idempotency.claim(test, "k", "other", after_lease).await.unwrap(),
        IdempotencyClaim::Mismatch,
        "only the same request takes a claim over"
    );
    let IdempotencyClaim::Claimed { token: second } = p.idempotency.claim(test, "k", "fp", after_lease).await.unwrap()
    else {
        panic!("taken over once the lease ran out");
    };
    let held = |token| HeldClaim {
        scope: test,
        key: "k",
        token,
    };
    p.idempotency.complete(held(&first), 201, "first", None).await.unwrap();
    assert_eq!(
        p.idempotency.claim(test, "k", "fp", after_lease).await.unwrap(),
        IdempotencyClaim::InProgress
    );
    p.idempotency.release(held(&first)).await.unwrap();
    let follow_up = FollowUp {
        secret: SecretRef {
            entity_id: test.entity_id,
            connector_id: ConnectorId::new_random(),
            connector_type: ConnectorType::parse("stripe").unwrap(),
        },
        action: SecretAction::ForceDelete,
    };
    p.idempotency
        .complete(held(&second), 200, "second", Some(follow_up))
        .await
        .unwrap();
    // Done, the key keeps its answer: its own request cannot release it any more.
    p.idempotency.release(held(&second)).await.unwrap();
    assert_eq!(
        p.idempotency.claim(test, "k", "fp", after_lease).await.unwrap(),
        IdempotencyClaim::Replay {
            status: 200,
            body: "second".into(),
            follow_up: Some(follow_up),
        }
    );
}

/// A write's transaction stores its key's answer with the change, only while the claim
/// is held; a key whose claim was taken over fails the whole transaction.
async fn a_write_commits_its_key_answer_in_its_own_transaction(p: Ports) {
    let now = p.clock.now();
    let row = new_row(now);
    let scope = IdempotencyScope {
        entity_id: row.entity_id,
        livemode: false,
    };
    let IdempotencyClaim::Claimed { token } = p.idempotency.claim(scope, "w", "fp", now).await.unwrap() else {
        panic!("a new key is claimed");
    };
    let follow_up = FollowUp {
        secret: row.secret_ref(),
        action: SecretAction::FollowRow,
    };
    let answer = |token: &str| KeyAnswer {
        scope,
        key: "w".into(),
        token: token.into(),
        status: 201,
        body: "created".into(),
        follow_up: Some(follow_up),
    };
    let stale = answer("not-the-claim");
    assert_eq!(
        p.store.save(&row, None, &[], Some(&stale)).await,
        Err(StoreError::ConditionFailed),
        "a claim no longer held fails the write"
    );
    assert_eq!(p.store.get(row.entity_id, row.connector_type).await.unwrap(), None);
    p.store.save(&row, None, &[], Some(&answer(&token))).await.unwrap();
    let replay = IdempotencyClaim::Replay {
        status: 201,
        body: "created".into(),
        follow_up: Some(follow_up),
    };
    assert_eq!(p.idempotency.claim(scope, "w", "fp", now).await.unwrap(), replay);
    let held = HeldClaim {
        scope,
        key: "w",
        token: &token,
    };
    p.idempotency.release(held).await.unwrap();
    assert_eq!(
        p.idempotency.claim(scope, "w", "fp", now).await.unwrap(),
        replay,
        "committed, the key keeps its answer"
    );
    // The request that committed finished its secret work: no follow-up left to redo.
    p.idempotency.complete(held, 201, "created", None).await.unwrap();
    assert_eq!(
        p.idempotency.claim(scope, "w", "fp", now).await.unwrap(),
        IdempotencyClaim::Replay {
            status: 201,
            body: "created".into(),
            follow_up: None,
        }
    );
}

/// Secrets Manager's states per name, as the vault's calls move them.
async fn secrets_move_between_active_scheduled_and_gone(p: Ports) {
    let secret = SecretRef {
        entity_id: EntityId::new_random(),
        connector_id: ConnectorId::new_random(),
        connector_type: ConnectorType::parse("stripe").unwrap(),
    };
    let other = SecretRef {
        connector_id: ConnectorId::new_random(),
        ..secret
    };
    assert_eq!((p.inspect)(secret).await, Seen::Absent);
    p.vault.restore(&secret).await.unwrap();
    p.vault.schedule_deletion(&secret, 7).await.unwrap();
    p.vault.force_delete(&secret).await.unwrap();
    put(&p, &secret, "one").await;
    put(&p, &other, "other").await;
    let active = |value: &str| Seen::Active(payload(value).to_secret_string());
    assert_eq!((p.inspect)(secret).await, active("one"));
    p.vault.schedule_deletion(&secret, 7).await.unwrap();
    p.vault.schedule_deletion(&secret, 7).await.unwrap();
    assert_eq!((p.inspect)(secret).await, Seen::Scheduled);
    p.vault.restore(&secret).await.unwrap();
    assert_eq!((p.inspect)(secret).await, active("one"));
    p.vault.schedule_deletion(&secret, 7).await.unwrap();
    p.vault.restore(&secret).await.unwrap();
    put(&p, &secret, "two").await;
    assert_eq!((p.inspect)(secret).await, active("two"), "restored, then written");
    p.vault.force_delete(&secret).await.unwrap();
    p.vault.force_delete(&secret).await.unwrap();
    assert_eq!((p.inspect)(secret).await, Seen::Absent);
    assert_eq!((p.inspect)(other).await, active("other"), "bound to its own connector");
}

/// A new version written staged and made current, as the service writes credentials.
async fn put(p: &Ports, secret: &SecretRef, value: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    p.vault.create(secret).await.unwrap();
    p.vault.write_version(secret, &id, "v0", &payload(value)).await.unwrap();
    p.vault.make_current(secret, &id, None).await.unwrap();
    id
}

/// Credential versions: a staged write leaves `AWSCURRENT` where it is; `make_current`
/// moves it by compare-and-swap, or after a look-up when the swap's premise is stale; the
/// current version can be labelled; a scheduled secret refuses changes and an absent
/// one is `Absent`. Where the emulator departs from AWS, the departure is pinned here (and
/// the in-memory vault does what AWS does).
async fn credential_versions_move_as_aws_moves_them(p: Ports) {
    let on_emulator = p._harness.is_some();
    let secret = SecretRef {
        entity_id: EntityId::new_random(),
        connector_id: ConnectorId::new_random(),
        connector_type: ConnectorType::parse("stripe").unwrap(),
    };
    let active = |value: &str| Seen::Active(payload(value).to_secret_string());
    let (one, two) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    assert_eq!(
        p.vault.write_version(&secret, &one, "v0", &payload("one")).await,
        Err(SecretError::Absent)
    );
    p.vault.create(&secret).await.unwrap();
    p.vault.create(&secret).await.unwrap();
    p.vault
        .write_version(&secret, &one, "v0", &payload("one"))
        .await
        .unwrap();
    assert_eq!(
        (p.inspect)(secret).await,
        active("one"),
        "a first version is current at once"
    );
    p.vault
        .write_version(&secret, &one, "v0", &payload("one"))
        .await
        .unwrap();
    p.vault
        .write_version(&secret, &two, "v1", &payload("two"))
        .await
        .unwrap();
    assert_eq!(
        (p.inspect)(secret).await,
        active("one"),
        "a staged write is not current"
    );
    p.vault.make_current(&secret, &two, Some(&one)).await.unwrap();
    assert_eq!((p.inspect)(secret).await, active("two"));
    // A stale premise (`one` no longer holds AWSCURRENT): looked up, then moved.
    p.vault.make_current(&secret, &one, Some(&two)).await.unwrap();
    assert_eq!((p.inspect)(secret).await, active("one"), "rolled back");
    p.vault.make_current(&secret, &two, Some(&two)).await.unwrap();
    assert_eq!(
        (p.inspect)(secret).await,
        active("one"),
        "believed current: nothing to move"
    );
    p.vault.make_current(&secret, &two, Some(&two)).await.unwrap();
    p.vault.make_current(&secret, &two, None).await.unwrap();
    assert_eq!((p.inspect)(secret).await, active("two"));
    assert_eq!(
        p.vault.label_current(&secret, "v7").await.unwrap().as_deref(),
        Some(two.as_str())
    );
    if on_emulator {
        // Emulator departure: a plain GetSecretValue (no VersionStage) after a stage move
        // answers the version current before it; readers ask for AWSCURRENT.
        let h = p._harness.as_ref().unwrap();
        let name = secret_name(&h.settings.secret_prefix, &secret);
        let plain = h.secrets.get_secret_value().secret_id(&name).send().await.unwrap();
        assert_ne!(
            plain.secret_string(),
            Some(payload("two").to_secret_string().as_str()),
            "the emulator now answers plain reads with AWSCURRENT: the VersionStage workaround may go"
        );
    }
    p.vault.schedule_deletion(&secret, 7).await.unwrap();
    let three = uuid::Uuid::new_v4().to_string();
    let written = p.vault.write_version(&secret, &three, "v2", &payload("three")).await;
    if on_emulator {
        // Emulator departure: it accepts a write to a scheduled secret (AWS refuses it
        // with InvalidRequestException; the fault matrix drives that answer through the
        // fault proxy).
        assert!(
            written.is_ok(),
            "the emulator now refuses writes to scheduled secrets: {written:?}"
        );
    } else {
        assert_eq!(written, Err(SecretError::Scheduled));
    }
    p.vault.restore(&secret).await.unwrap();
    assert_eq!(
        (p.inspect)(secret).await,
        active("two"),
        "a staged write never became current"
    );
}

/// API keys: found by hash, unique by hash and id, listed per entity, revoked once.
async fn keys_are_found_by_hash_unique_and_revoked_once(p: Ports) {
    let now = p.clock.now();
    let entity = EntityId::new_random();
    let new = generate_key(true);
    let record = ApiKeyRecord {
        key_id: new.key_id.clone(),
        entity_id: entity,
        livemode: true,
        scopes: Scope::ALL.iter().copied().collect(),
        created_at: now,
        key_expires_at: None,
        revoked_at: None,
    };
    assert_eq!(p.keys.find(&new.hash).await.unwrap(), None);
    p.keys.create(&record, &new.hash).await.unwrap();
    assert_eq!(
        p.keys.create(&record, &new.hash).await,
        Err(StoreError::ConditionFailed)
    );
    let other = generate_key(true);
    assert_eq!(
        p.keys.create(&record, &other.hash).await,
        Err(StoreError::ConditionFailed),
        "one record per key id"
    );
    assert_eq!(p.keys.find(&new.hash).await.unwrap(), Some(record.clone()));
    assert_eq!(p.keys.list(entity).await.unwrap(), vec![record.clone()]);
    assert!(p.keys.revoke(&record.key_id, now).await.unwrap());
    assert!(p.keys.revoke(&record.key_id, now.plus_seconds(60)).await.unwrap());
    assert_eq!(
        p.keys.find(&new.hash).await.unwrap().unwrap().revoked_at,
        Some(now),
        "the first revocation stands"
    );
    assert!(!p.keys.revoke(&other.key_id, now).await.unwrap(), "no such key");
}

/// A lease is taken by one owner until its end, then by anyone; only its owner gives it
/// back; leases of other names are separate.
async fn leases_are_held_until_their_end_and_released_only_by_their_owner(p: Ports) {
    let now = p.clock.now();
    let until = now.plus_seconds(60);
    let take = |owner: &'static str, until, now| {
        let store = p.store.clone();
        async move { store.take_lease("contract", owner, until, now).await.unwrap() }
    };
    assert_eq!(take("a", until, now).await, LeaseClaim::Taken);
    assert_eq!(take("b", until, now).await, LeaseClaim::HeldElsewhere);
    assert_eq!(take("a", until, now).await, LeaseClaim::HeldElsewhere, "not re-entrant");
    assert_eq!(
        p.store.take_lease("other", "b", until, now).await.unwrap(),
        LeaseClaim::Taken,
        "another name"
    );
    assert_eq!(take("b", until, now.plus_seconds(59)).await, LeaseClaim::HeldElsewhere);
    assert_eq!(
        take("b", until.plus_seconds(60), until).await,
        LeaseClaim::Taken,
        "at its end"
    );
    p.store.release_lease("contract", "a").await.unwrap();
    assert_eq!(
        take("c", until.plus_seconds(60), until).await,
        LeaseClaim::HeldElsewhere,
        "a's release after b took over leaves b's lease"
    );
    p.store.release_lease("contract", "b").await.unwrap();
    p.store.release_lease("contract", "b").await.unwrap();
    assert_eq!(
        take("c", until.plus_seconds(60), until).await,
        LeaseClaim::Taken,
        "free once released"
    );
}

macro_rules! on_both {
    ($($contract:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test] async fn $contract() { super::$contract(super::memory()).await; })*
        }
        mod on_the_emulator {
            $(#[tokio::test] async fn $contract() { super::$contract(super::emulator().await).await; })*
        }
    };
}

on_both!(
    rows_are_written_only_at_their_expected_version,
    sync_states_are_written_only_beside_the_row_they_were_read_with,
    the_due_index_finds_what_is_due_and_nothing_else,
    idempotency_claims_hold_for_their_lease_and_their_mode,
    a_write_commits_its_key_answer_in_its_own_transaction,
    secrets_move_between_active_scheduled_and_gone,
    credential_versions_move_as_aws_moves_them,
    keys_are_found_by_hash_unique_and_revoked_once,
    leases_are_held_until_their_end_and_released_only_by_their_owner,
);
