//! Races: many clients at once on one connector — disconnect, restore, PATCH, new
//! credentials — and afterwards the row, the secret and the event stream must agree:
//! every stored change announced exactly once, in an order the lifecycle allows.

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use shared::domain::catalog::ConnectorType;
use shared::domain::time::Timestamp;
use shared::domain::view::project;
use shared::ports::{Clock, ManualClock};
use support::faults::FaultProxy;
use support::Harness;

/// Every reading is one second after the previous, so each stored change has its own
/// `updated_at` and the events can be put back in order.
struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.0.fetch_add(1, Ordering::SeqCst)).unwrap()
    }
}

pub const RACERS: usize = 32;

/// A harness whose service reads a [`TickingClock`] and reaches DynamoDB through a
/// serialising proxy (DynamoDB's transaction isolation, which moto lacks: see
/// `start_serializing`); the proxy lives as long as what is returned.
async fn ticking_harness() -> (Harness, Arc<TickingClock>, FaultProxy) {
    let start = chrono::Utc::now().timestamp();
    let ticking = Arc::new(TickingClock(AtomicI64::new(start)));
    let proxy = FaultProxy::start_serializing(&support::emulator_endpoint()).await;
    let h = Harness::with_clock_and_endpoint(
        Arc::new(ManualClock::new(Timestamp::from_unix(start).unwrap())),
        ticking.clone(),
        Some(&proxy.url),
    )
    .await;
    (h, ticking, proxy)
}

fn rounds() -> usize {
    std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_clients_leave_a_consistent_row_secret_and_event_stream() {
    let (h, ticking, _proxy) = ticking_harness().await;
    let (entity, key) = h.tenant(false).await;
    let base = "/v1/integrations/stripe";
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let creds = |n: usize| json!({"credentials": {"secret_key": format!("sk_{n}")}});
    assert_eq!(h.as_key(&key).put_credentials("stripe", creds(0)).await.status, 200);
    let stripe = ConnectorType::parse("stripe").unwrap();
    let first_version = support::as_operator(h.app.service.store.get(entity, stripe))
        .await
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(
        h.events(2).await.len(),
        2,
        "the setup's connected and credentials_updated"
    );

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for round in 0..rounds() {
        let calls = (0..RACERS).map(|i| {
            let (method, path, body) = match i % 4 {
                0 => ("DELETE", base.to_string(), None),
                1 => ("POST", format!("{base}/restore"), None),
                2 => (
                    "PATCH",
                    base.to_string(),
                    Some(json!({"display_name": format!("r{round}-c{i}")})),
                ),
                _ => ("PUT", format!("{base}/credentials"), Some(creds(round * RACERS + i))),
            };
            let key = key.clone();
            let h = &h;
            async move { h.as_key(&key).send(method, &path, body).await }
        });
        for r in join_all(calls).await {
            assert!(matches!(r.status, 200 | 409), "{}", r.raw);
            if r.status == 409 {
                assert_eq!(r.error_code(), "conflict", "a lost race is a 409 conflict");
            }
            *statuses.entry(r.status).or_default() += 1;
        }
    }

    // Let the sweeper deliver anything a racer left in the outbox.
    ticking
        .0
        .fetch_add(shared::ports::OUTBOX_GRACE_SECONDS + 1, Ordering::SeqCst);
    let final_row = support::as_operator(h.app.service.store.get(entity, stripe))
        .await
        .unwrap()
        .unwrap();
    let report = h.sweep().await;
    assert_eq!(report.failed, 0);

    // Secret agrees with the row.
    let secret = h.describe_secret(entity, "stripe").await.expect("secret kept");
    assert_eq!(
        secret.deleted_date().is_some(),
        !final_row.is_active,
        "secret scheduled iff disconnected"
    );
    if final_row.is_active {
        assert!(h.secret_value(entity, "stripe").await.is_some());
    }

    // Events: one group per stored change (same updated_at), none lost, none invented.
    let events: Vec<Value> = h.events(1).await;
    let mut by_change: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for e in &events {
        let d = &e["detail"];
        if ids.contains(d["id"].as_str().unwrap()) {
            continue;
        }
        ids.insert(d["id"].as_str().unwrap().to_string());
        by_change
            .entry(d["data"]["object"]["updated_at"].as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    let changes = (final_row.version - first_version) as usize;
    assert_eq!(
        by_change.len(),
        changes,
        "every stored change announced, and only those"
    );

    // In updated_at order, the moves follow the lifecycle.
    let mut active = true;
    let mut last_object = Value::Null;
    // Within one change the events were written in this order (delivery may reorder).
    let precedence = |t: &str| match t {
        "integration.restored" => 0,
        "integration.updated" | "integration.credentials_updated" => 1,
        "integration.disconnected" => 2,
        other => panic!("unexpected {other}"),
    };
    for group in by_change.values_mut() {
        group.sort_by_key(|e| precedence(e["detail"]["type"].as_str().unwrap()));
        for e in group.iter() {
            match e["detail"]["type"].as_str().unwrap() {
                "integration.disconnected" => {
                    assert!(active, "disconnected while disconnected");
                    active = false;
                }
                "integration.restored" => {
                    assert!(!active, "restored while active");
                    active = true;
                }
                _ => {}
            }
        }
        let object = &group[0]["detail"]["data"]["object"];
        assert!(
            group.iter().all(|e| &e["detail"]["data"]["object"] == object),
            "one change, one object"
        );
        assert_eq!(
            object["is_active"], active,
            "the object shows the state after the change"
        );
        last_object = object.clone();
    }
    assert_eq!(active, final_row.is_active);
    assert_eq!(
        last_object,
        project(&final_row),
        "the last announcement is the final state"
    );
    println!(
        "races: {RACERS} racers x {} rounds; answers {statuses:?}; {changes} changes, {} events, final active={}",
        rounds(),
        ids.len(),
        final_row.is_active
    );
}

/// Sync reports racing edits and credentials `PUT`s on one connector: no edit or `PUT`
/// loses its race to a report (reports never write the row), no report lands on a state
/// a reset replaced, and the last announcement is the row as finally shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_reports_never_make_an_edit_or_a_credentials_put_lose_its_race() {
    let (h, ticking, _proxy) = ticking_harness().await;
    let (entity, key) = h.tenant(false).await;
    let base = "/v1/integrations/stripe";
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let mut statuses: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    let mut run = 0;
    for round in 0..rounds() {
        let calls = (0..10).map(|i| {
            let (method, path, body) = match i {
                0 => ("PATCH", base.to_string(), json!({"display_name": format!("r{round}")})),
                1 => (
                    "PUT",
                    format!("{base}/credentials"),
                    json!({"credentials": {"secret_key": format!("sk_{round}")}}),
                ),
                _ => {
                    run += 1;
                    (
                        "POST",
                        format!("{base}/sync-reports"),
                        json!({"outcome": "failed", "error": {"code": "auth_failed"}, "run_id": format!("run-{run}")}),
                    )
                }
            };
            let key = key.clone();
            let h = &h;
            async move { (method, h.as_key(&key).send(method, &path, Some(body)).await) }
        });
        for (method, r) in join_all(calls).await {
            if method == "POST" {
                assert!(matches!(r.status, 200 | 409), "{}", r.raw);
            } else {
                assert_eq!(r.status, 200, "{method} lost its race: {}", r.raw);
            }
            *statuses.entry((method, r.status)).or_default() += 1;
        }
    }
    ticking
        .0
        .fetch_add(shared::ports::OUTBOX_GRACE_SECONDS + 1, Ordering::SeqCst);
    let stripe = ConnectorType::parse("stripe").unwrap();
    let final_row = support::as_operator(h.app.service.store.get(entity, stripe))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.sweep().await.failed, 0);
    let events: Vec<Value> = h.events(1).await;
    let last = events
        .iter()
        .max_by_key(|e| {
            e["detail"]["data"]["object"]["updated_at"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    assert_eq!(
        last["detail"]["data"]["object"],
        project(&final_row),
        "the last announcement is the final state"
    );
    // Every reset was followed by a report counted from scratch: health is never shown
    // from a state an older reset replaced.
    let shown = project(&final_row);
    assert!(
        matches!(shown["health"].as_str(), Some("unknown" | "auth_failed")),
        "{shown}"
    );
    println!("sync report races: {} rounds; answers {statuses:?}", rounds());
}

/// A harness, an active stripe connector with credentials, and an app whose calls go
/// through a fault proxy (to hold one of them back).
async fn overtaking_setup() -> (Harness, shared::domain::ids::EntityId, String, FaultProxy, shared::App) {
    let h = Harness::new().await;
    let (entity, key) = h.tenant(false).await;
    assert_eq!(h.as_key(&key).post("stripe", None).await.status, 201);
    let creds = json!({"credentials": {"secret_key": "sk_overtaken"}});
    let stored = h.as_key(&key).put_credentials("stripe", creds).await;
    assert_eq!(stored.status, 200);
    let proxy = FaultProxy::start(&support::emulator_endpoint()).await;
    let faulty = shared::App::from_clients(
        support::clients(&h.sdk, Some(&proxy.url), None),
        h.settings.clone(),
        h.clock.clone(),
    );
    (h, entity, key, proxy, faulty)
}

/// The disconnect's scheduled deletion lands after a restore made the connector active
/// again; the disconnect sees the row moved and restores the secret itself (its function
/// needs `secretsmanager:RestoreSecret` for that).
#[tokio::test]
async fn a_disconnect_overtaken_by_a_restore_puts_the_secret_back() {
    let (h, entity, key, proxy, faulty) = overtaking_setup().await;
    let (disconnect, restore) =
        support::interleavings::disconnect_overtaken_by_restore(&h, &faulty, &proxy, &key, "stripe", false).await;
    assert_eq!(restore.status, 200, "{}", restore.raw);
    assert_eq!(restore.body["data"]["is_active"], true);
    assert_eq!(disconnect.status, 200, "{}", disconnect.raw);
    let (calls, _) = proxy.calls();
    assert!(
        calls.iter().any(|c| c.ends_with(".RestoreSecret")),
        "the disconnect put the secret back: {calls:?}"
    );

    let row = h.as_key(&key).get("stripe").await;
    assert_eq!(row.body["data"]["is_active"], true, "the restore came last");
    let secret = h.describe_secret(entity, "stripe").await.expect("secret kept");
    assert!(secret.deleted_date().is_none(), "not scheduled for deletion");
    assert!(
        h.secret_value(entity, "stripe").await.is_some(),
        "the credentials are readable"
    );
    assert!(h.outbox().await.is_empty(), "both requests finished their delivery");
}

/// As above, but the disconnect cannot publish and stops before it checks the row: the
/// secret of an active connector stays scheduled for deletion until the sweeper delivers
/// the disconnect's outbox record, follows the (active) row and restores it (the sweeper's
/// function needs `secretsmanager:RestoreSecret` for that).
#[tokio::test]
async fn the_sweeper_restores_a_secret_an_overtaken_disconnect_left_scheduled() {
    let (h, entity, key, proxy, faulty) = overtaking_setup().await;
    let (disconnect, restore) =
        support::interleavings::disconnect_overtaken_by_restore(&h, &faulty, &proxy, &key, "stripe", true).await;
    assert_eq!((disconnect.status, restore.status), (200, 200));
    let row = h.as_key(&key).get("stripe").await;
    assert_eq!(row.body["data"]["is_active"], true);
    assert!(
        h.secret_value(entity, "stripe").await.is_none(),
        "left behind: an active connector whose secret is scheduled for deletion"
    );
    assert_eq!(
        h.outbox().await.len(),
        1,
        "the disconnect's record waits for the sweeper"
    );

    h.clock.advance_seconds(shared::ports::OUTBOX_GRACE_SECONDS + 1);
    let report = h.sweep().await;
    assert_eq!((report.republished, report.failed), (1, 0), "{report:?}");
    let secret = h.describe_secret(entity, "stripe").await.expect("secret kept");
    assert!(secret.deleted_date().is_none(), "restored by the sweeper");
    assert!(
        h.secret_value(entity, "stripe").await.is_some(),
        "the credentials are readable"
    );
    assert!(h.outbox().await.is_empty());
}
